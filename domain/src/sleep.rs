//! Sleep stages of the contract (reference §3.5), the `stage` of every sleep interval.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SleepStage {
    InBed,
    Awake,
    /// Asleep, stage not specified by the provider.
    Sleeping,
    Light,
    Deep,
    Rem,
    Unknown,
}

impl SleepStage {
    pub const ALL: [SleepStage; 7] = [
        SleepStage::InBed,
        SleepStage::Awake,
        SleepStage::Sleeping,
        SleepStage::Light,
        SleepStage::Deep,
        SleepStage::Rem,
        SleepStage::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SleepStage::InBed => "in_bed",
            SleepStage::Awake => "awake",
            SleepStage::Sleeping => "sleeping",
            SleepStage::Light => "light",
            SleepStage::Deep => "deep",
            SleepStage::Rem => "rem",
            SleepStage::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<SleepStage> {
        SleepStage::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True for the stages that count as sleep time (not in bed awake, not unknown).
    pub fn is_asleep(self) -> bool {
        matches!(
            self,
            SleepStage::Sleeping | SleepStage::Light | SleepStage::Deep | SleepStage::Rem
        )
    }
}

impl std::fmt::Display for SleepStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for st in SleepStage::ALL {
            assert_eq!(SleepStage::parse(st.as_str()), Some(st));
            assert_eq!(st.to_string(), st.as_str());
        }
        assert_eq!(SleepStage::parse("in_bed"), Some(SleepStage::InBed));
        assert_eq!(SleepStage::parse("REM"), None);
    }

    #[test]
    fn only_sleep_stages_count_as_asleep() {
        let asleep: Vec<_> = SleepStage::ALL
            .into_iter()
            .filter(|s| s.is_asleep())
            .collect();
        assert_eq!(
            asleep,
            [
                SleepStage::Sleeping,
                SleepStage::Light,
                SleepStage::Deep,
                SleepStage::Rem
            ]
        );
    }
}
