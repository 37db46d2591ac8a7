//! Import bombs: a zip that inflates to gigabytes, a giant tag or text node, floods of made-up
//! source and type names. Each fails its import with a clear error visible on the import, writes
//! nothing to the read models, keeps the server's memory bounded, and the next import completes.

use crate::common;

use common::{create_user, import_export, settle, Server};
use flate2::{Compress, Compression, FlushCompress};

const SMALL: &str = include_str!("../fixtures/small_export.xml");

/// Deflates `head`, then `chunk` `times` over, as one raw deflate stream, without deflating all
/// of it: after a full flush the compressor starts afresh, so one compressed chunk repeats.
fn deflate_repeated(head: &[u8], chunk: &[u8], times: usize) -> Vec<u8> {
    fn run(c: &mut Compress, input: &[u8], flush: FlushCompress) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() / 100 + 1024);
        let mut pos = 0;
        loop {
            out.reserve(64 * 1024);
            let before = c.total_in();
            c.compress_vec(&input[pos..], &mut out, flush).unwrap();
            pos += (c.total_in() - before) as usize;
            if pos == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
    let mut c = Compress::new(Compression::best(), false);
    let mut stream = run(&mut c, head, FlushCompress::Full);
    let one = run(&mut c, chunk, FlushCompress::Full);
    for _ in 0..times {
        stream.extend_from_slice(&one);
    }
    stream.extend(run(&mut c, b"", FlushCompress::Finish));
    stream
}

/// A one-entry zip of already-deflated data. The header claims 1 MB inflated (and carries no
/// real checksum), as a bomb would: only counting what comes out can stop it.
fn zip_of_deflated(name: &str, deflated: &[u8]) -> Vec<u8> {
    let mut z = Vec::new();
    let n = name.len() as u16;
    let csize = deflated.len() as u32;
    let claimed: u32 = 1_000_000;
    let le16 = |z: &mut Vec<u8>, v: u16| z.extend_from_slice(&v.to_le_bytes());
    let le32 = |z: &mut Vec<u8>, v: u32| z.extend_from_slice(&v.to_le_bytes());
    le32(&mut z, 0x0403_4b50);
    for v in [20u16, 0, 8, 0, 0x21] {
        le16(&mut z, v);
    }
    for v in [0u32, csize, claimed] {
        le32(&mut z, v);
    }
    le16(&mut z, n);
    le16(&mut z, 0);
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(deflated);
    let cd = z.len() as u32;
    le32(&mut z, 0x0201_4b50);
    for v in [20u16, 20, 0, 8, 0, 0x21] {
        le16(&mut z, v);
    }
    for v in [0u32, csize, claimed] {
        le32(&mut z, v);
    }
    for v in [n, 0, 0, 0, 0] {
        le16(&mut z, v);
    }
    le32(&mut z, 0);
    le32(&mut z, 0);
    z.extend_from_slice(name.as_bytes());
    let cd_size = z.len() as u32 - cd;
    le32(&mut z, 0x0605_4b50);
    for v in [0u16, 0, 1, 1] {
        le16(&mut z, v);
    }
    le32(&mut z, cd_size);
    le32(&mut z, cd);
    le16(&mut z, 0);
    z
}

const HEAD: &[u8] =
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HealthData locale=\"en_US\">\n <ExportDate value=\"2024-03-10 09:00:00 +0100\"/>\n";

fn doc(body: &str) -> Vec<u8> {
    let mut d = HEAD.to_vec();
    d.extend_from_slice(body.as_bytes());
    d.extend_from_slice(b"\n</HealthData>\n");
    d
}

fn record(ty: &str, source: &str) -> String {
    format!(
        " <Record type=\"{ty}\" sourceName=\"{source}\" unit=\"count\" startDate=\"2024-03-10 08:00:00 +0100\" endDate=\"2024-03-10 08:01:00 +0100\" value=\"5\"/>\n"
    )
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

#[tokio::test]
async fn import_bombs_fail_cleanly_and_the_next_import_completes() {
    // The absolute inflation cap is lowered so the bomb is stopped after a few seconds of
    // parsing in a debug build; the ratio cap and the other caps keep their defaults.
    // The binary: the server's own peak memory is checked.
    let s = Server::start_process(
        common::TestDb::new().await,
        &[("WEARHOUSE_IMPORT_MAX_INFLATED_BYTES", "16000000")],
    )
    .await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;

    // 10 GiB of valid, repetitive XML in about 10 MB: stopped by the absolute cap.
    let line = b" <ExportDate value=\"2024-03-10 09:00:00 +0100\"/>\n";
    let chunk: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 80_000)
        .collect();
    let times = ((10u64 << 30) / chunk.len() as u64) as usize;
    let xml_bomb = zip_of_deflated(
        "apple_health_export/export.xml",
        &deflate_repeated(HEAD, &chunk, times),
    );
    assert!(xml_bomb.len() < 40 << 20, "{}", xml_bomb.len());
    // 10 GiB of zeros after the root tag: one endless text node.
    let zeros = vec![0u8; 4 << 20];
    let zero_bomb = zip_of_deflated(
        "apple_health_export/export.xml",
        &deflate_repeated(
            b"<?xml version=\"1.0\"?>\n<HealthData locale=\"en_US\">",
            &zeros,
            2560,
        ),
    );
    assert!(zero_bomb.len() < 40 << 20, "{}", zero_bomb.len());
    // 12 MB from a few KB: past the default ratio cap (100 times the upload) long before the
    // absolute one.
    let ratio_bomb = zip_of_deflated(
        "apple_health_export/export.xml",
        &deflate_repeated(HEAD, &chunk, 3),
    );

    let huge_attribute = doc(&format!(
        " <Record type=\"HKQuantityTypeIdentifierStepCount\" sourceName=\"{}\" unit=\"count\" startDate=\"2024-03-10 08:00:00 +0100\" endDate=\"2024-03-10 08:01:00 +0100\" value=\"5\"/>",
        "x".repeat(3 << 20)
    ));
    let huge_text = doc(&format!(
        "{} <Note>{}</Note>",
        record("HKQuantityTypeIdentifierStepCount", "Phone"),
        "y".repeat(3 << 20)
    ));
    let sources: String = (0..10_001)
        .map(|i| record("HKQuantityTypeIdentifierStepCount", &format!("App {i}")))
        .collect();
    let types: String = (0..10_001)
        .map(|i| record(&format!("HKQuantityTypeIdentifierMadeUp{i}"), "Phone"))
        .collect();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bomb.zip", xml_bomb, "inflates to more than 16000000 bytes"),
        ("zeros.zip", zero_bomb, "longer than 1048576 bytes"),
        ("ratio.zip", ratio_bomb, "100 times the upload"),
        ("attribute.xml", huge_attribute, "longer than 1048576 bytes"),
        ("text.xml", huge_text, "longer than 1048576 bytes"),
        (
            "sources.xml",
            doc(&sources),
            "more than 10000 distinct sources",
        ),
        ("types.xml", doc(&types), "more than 10000 distinct unknown"),
    ];
    for (name, bytes, expected) in cases {
        let started = std::time::Instant::now();
        let done = import_export(&s, &key, &user, name, bytes).await;
        assert_eq!(done["status"], "failed", "{name}: {done}");
        let error = done["error"].as_str().unwrap();
        assert!(error.contains("import limit reached"), "{name}: {error}");
        assert!(error.contains(expected), "{name}: {error}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "{name} took {:?}",
            started.elapsed()
        );
        // The server keeps answering while and after it refuses a bomb.
        let (status, _) = s
            .get(&key, &format!("/api/v1/users/{user}/data-sources"))
            .await;
        assert_eq!(status, 200, "{name}");
    }
    let hwm_mib = vm_hwm_kib(s.pid()) / 1024;
    eprintln!("server peak resident memory after the bombs: {hwm_mib} MiB");
    assert!(hwm_mib < 300, "server peak resident memory {hwm_mib} MiB");

    settle(&s.db).await;
    let db = s.db.client().await;
    for table in [
        "samples",
        "sample_batches",
        "data_sources",
        "sleep_sessions",
        "workouts",
    ] {
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}: a refused import writes nothing");
    }

    // A good import after all of them completes.
    let done = import_export(&s, &key, &user, "export.xml", SMALL.as_bytes().to_vec()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["counts"]["samples"].as_u64().unwrap() > 0, "{done}");
}
