//! The unified workout types of the contract (reference §3.6): 117 snake_case codes.

/// Every workout type code, in the contract's order.
pub static WORKOUT_TYPES: [&str; 117] = [
    "running",
    "trail_running",
    "treadmill",
    "walking",
    "hiking",
    "mountaineering",
    "cycling",
    "mountain_biking",
    "indoor_cycling",
    "cyclocross",
    "swimming",
    "pool_swimming",
    "open_water_swimming",
    "strength_training",
    "cardio_training",
    "fitness_equipment",
    "elliptical",
    "rowing_machine",
    "stair_climbing",
    "yoga",
    "pilates",
    "stretching",
    "meditation",
    "cross_country_skiing",
    "alpine_skiing",
    "backcountry_skiing",
    "downhill_skiing",
    "snowboarding",
    "snowshoeing",
    "ice_skating",
    "snowmobiling",
    "winter_sports",
    "snow_sports",
    "rowing",
    "kayaking",
    "canoeing",
    "paddling",
    "stand_up_paddleboarding",
    "surfing",
    "kitesurfing",
    "windsurfing",
    "sailing",
    "water_polo",
    "wakeboarding",
    "water_skiing",
    "boating",
    "water_sports",
    "soccer",
    "basketball",
    "football",
    "american_football",
    "baseball",
    "tennis",
    "badminton",
    "volleyball",
    "handball",
    "rugby",
    "hockey",
    "floorball",
    "lacrosse",
    "cricket",
    "squash",
    "table_tennis",
    "padel",
    "pickleball",
    "racquetball",
    "racket_sports",
    "boxing",
    "martial_arts",
    "wrestling",
    "fencing",
    "rock_climbing",
    "indoor_climbing",
    "bouldering",
    "trail_hiking",
    "orienteering",
    "archery",
    "fishing",
    "hunting",
    "paragliding",
    "parkour",
    "golf",
    "skating",
    "inline_skating",
    "skateboarding",
    "horseback_riding",
    "gymnastics",
    "bowling",
    "curling",
    "disc_sports",
    "triathlon",
    "multisport",
    "motorcycling",
    "motor_sports",
    "dance",
    "aerobics",
    "group_exercise",
    "e_biking",
    "virtual_activity",
    "diving",
    "snorkeling",
    "walking_fitness",
    "casual_walking",
    "transition",
    "team_sports",
    "para_sports",
    "play",
    "wheelchair",
    "recovery",
    "gaming",
    "chores",
    "lifestyle",
    "work",
    "operations",
    "generic",
    "other",
    "sport",
];

/// A workout type: a validated code from [`WORKOUT_TYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkoutType(&'static str);

impl WorkoutType {
    pub const OTHER: WorkoutType = WorkoutType("other");

    /// Parses a code. Providers send snake_case or UPPERCASE, so case is ignored.
    pub fn parse(code: &str) -> Option<WorkoutType> {
        WORKOUT_TYPES
            .iter()
            .find(|c| c.eq_ignore_ascii_case(code))
            .map(|c| WorkoutType(c))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Types whose pace (time per km) is meaningful, per the contract's `WORKOUTS_WITH_PACE`.
    pub fn has_pace(self) -> bool {
        matches!(
            self.0,
            "running"
                | "trail_running"
                | "treadmill"
                | "walking"
                | "hiking"
                | "trail_hiking"
                | "walking_fitness"
                | "casual_walking"
                | "mountaineering"
                | "cycling"
                | "mountain_biking"
                | "indoor_cycling"
                | "cyclocross"
                | "e_biking"
                | "swimming"
                | "pool_swimming"
                | "open_water_swimming"
                | "rowing"
                | "rowing_machine"
                | "kayaking"
                | "canoeing"
                | "paddling"
                | "stand_up_paddleboarding"
                | "cross_country_skiing"
                | "backcountry_skiing"
                | "skating"
                | "inline_skating"
                | "ice_skating"
                | "triathlon"
        )
    }
}

impl std::fmt::Display for WorkoutType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_117_distinct_snake_case_codes() {
        let mut codes = WORKOUT_TYPES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 117);
        assert!(codes
            .iter()
            .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn parse_round_trips_and_ignores_case() {
        for c in WORKOUT_TYPES {
            assert_eq!(WorkoutType::parse(c).unwrap().as_str(), c);
        }
        assert_eq!(
            WorkoutType::parse("TRAIL_RUNNING").unwrap().as_str(),
            "trail_running"
        );
        assert!(WorkoutType::parse("quidditch").is_none());
        assert_eq!(WorkoutType::OTHER.to_string(), "other");
    }

    #[test]
    fn pace_applies_to_endurance_types_only() {
        assert!(WorkoutType::parse("running").unwrap().has_pace());
        assert!(WorkoutType::parse("e_biking").unwrap().has_pace());
        assert!(!WorkoutType::parse("yoga").unwrap().has_pace());
    }
}
