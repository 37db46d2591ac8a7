//! Opening an export: a plain `export.xml`, or the iPhone's `export.zip`, told apart by magic bytes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use super::limits::{InflateGuard, LimitExceeded, Limits};
use super::parse::ImportError;

const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";
const CHUNK: usize = 1 << 20;

/// Opens `path` for [`parse`](super::parse::parse). A zip is streamed, never loaded whole: the
/// entry `apple_health_export/export.xml` (or else any `*/export.xml` / `export.xml`) is inflated on
/// a helper thread, which also puts the second core to work while the parser runs.
pub fn open_export(path: &Path) -> Result<Box<dyn BufRead + Send>, ImportError> {
    open_export_counted(path, Arc::new(AtomicU64::new(0)))
}

/// Like [`open_export`], adding to `read` every byte taken from the file (compressed bytes for
/// a zip), so a caller can show progress against the file's size.
pub fn open_export_counted(
    path: &Path,
    read: Arc<AtomicU64>,
) -> Result<Box<dyn BufRead + Send>, ImportError> {
    open_export_limited(path, read, &Limits::default())
}

/// Like [`open_export_counted`], a zip's inflation capped by `limits` (absolute, and as a ratio
/// to the file's size): past a cap the reader fails with a [`LimitExceeded`] error.
pub fn open_export_limited(
    path: &Path,
    read: Arc<AtomicU64>,
    limits: &Limits,
) -> Result<Box<dyn BufRead + Send>, ImportError> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic)?;
    drop(file);
    let file = Counted {
        inner: File::open(path)?,
        read,
    };
    if n == 4 && &magic == ZIP_MAGIC {
        open_zip(file, InflateGuard::new((), limits, size))
    } else {
        Ok(Box::new(BufReader::with_capacity(CHUNK, file)))
    }
}

/// A reader that counts the bytes it hands out.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: io::Seek> io::Seek for Counted<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Picks the export entry: Apple's own path first, then any `export.xml` (never `export_cda.xml`).
fn find_entry<R: Read + io::Seek>(zip: &mut zip::ZipArchive<R>) -> Option<usize> {
    let names: Vec<(usize, String)> = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i).map(|n| (i, n.to_string())))
        .collect();
    names
        .iter()
        .find(|(_, n)| n == "apple_health_export/export.xml")
        .or_else(|| {
            names
                .iter()
                .find(|(_, n)| n == "export.xml" || n.ends_with("/export.xml"))
        })
        .map(|(i, _)| *i)
}

fn open_zip(
    file: Counted<File>,
    cap: InflateGuard<()>,
) -> Result<Box<dyn BufRead + Send>, ImportError> {
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| ImportError::Open(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let index = find_entry(&mut zip).ok_or(ImportError::NoExportInZip)?;
    // Bounded: at most a few MiB of inflated data wait for the parser.
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(4);
    std::thread::Builder::new()
        .name("export-unzip".into())
        .spawn(move || {
            let entry = match zip.by_index(index) {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    return;
                }
            };
            // A declared size past the cap is refused before inflating anything; the count
            // below holds whatever the header claims.
            if entry.size() > cap.cap {
                let _ = tx.send(Err(LimitExceeded::io(format!(
                    "the zip's export.xml declares {} bytes, more than {}: refused as a zip bomb",
                    entry.size(),
                    cap.what
                ))));
                return;
            }
            let mut entry = InflateGuard {
                inner: entry,
                inflated: 0,
                cap: cap.cap,
                what: cap.what,
            };
            loop {
                let mut chunk = vec![0u8; CHUNK];
                match read_up_to(&mut entry, &mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        if tx.send(Ok(chunk)).is_err() {
                            return; // the reader was dropped: stop inflating
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        })?;
    Ok(Box::new(BufReader::with_capacity(
        CHUNK,
        ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        },
    )))
}

/// Reads the chunks the unzip thread sends.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // sender finished: end of entry
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::apple::{generate, parse, NullSink};
    use std::io::Write;
    use std::path::PathBuf;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("wearhouse-{}-{name}", std::process::id()))
    }

    fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn xml_and_zip_exports_parse_the_same() {
        let mut xml = Vec::new();
        let expected = generate(&mut xml, 3, 3_000_000).unwrap();
        let xml_path = temp("export.xml");
        std::fs::write(&xml_path, &xml).unwrap();
        let zip_path = temp("export.zip");
        // The CDA document and routes come first in a real archive; they must be passed over.
        zip_with(
            &zip_path,
            &[
                ("apple_health_export/export_cda.xml", b"<ClinicalDocument/>"),
                ("apple_health_export/workout-routes/route_1.gpx", b"<gpx/>"),
                ("apple_health_export/export.xml", &xml),
            ],
        );
        for path in [&xml_path, &zip_path] {
            let report = parse(open_export(path).unwrap(), &mut NullSink).unwrap();
            assert_eq!(report.counts, expected, "{}", path.display());
            assert_eq!(report.bytes, xml.len() as u64);
        }
        std::fs::remove_file(xml_path).unwrap();
        std::fs::remove_file(zip_path).unwrap();
    }

    /// `head`, then `chunk` `times` over, as one raw deflate stream; after a full flush the
    /// compressor starts afresh, so one compressed chunk can be repeated.
    fn deflate_repeated(head: &[u8], chunk: &[u8], times: usize) -> Vec<u8> {
        use flate2::{Compress, Compression, FlushCompress};
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
        let mut c = Compress::new(Compression::fast(), false);
        let mut stream = run(&mut c, head, FlushCompress::Full);
        let one = run(&mut c, chunk, FlushCompress::Full);
        for _ in 0..times {
            stream.extend_from_slice(&one);
        }
        stream.extend(run(&mut c, b"", FlushCompress::Finish));
        stream
    }

    #[test]
    fn a_zip_bomb_stops_at_the_inflation_caps() {
        let line = b" <ExportDate value=\"2024-03-10 09:00:00 +0100\"/>\n";
        let chunk: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 20_000)
            .collect();
        let deflated = deflate_repeated(
            b"<?xml version=\"1.0\"?>\n<HealthData locale=\"en_US\">\n",
            &chunk,
            1000,
        );
        // Stored as deflate data of a zip entry (the writer's own deflate would take minutes).
        let path = temp("bomb.zip");
        let mut z = zip::ZipWriter::new(File::create(&path).unwrap());
        z.start_file(
            "apple_health_export/export.xml",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        z.write_all(&deflated).unwrap();
        z.finish().unwrap();
        // Flip the entry's method to deflate in the local and central headers.
        let mut bytes = std::fs::read(&path).unwrap();
        for sig in [&b"PK\x03\x04"[..], b"PK\x01\x02"] {
            let at = bytes.windows(4).position(|w| w == sig).unwrap();
            let method = at + if sig[2] == 3 { 8 } else { 10 };
            bytes[method] = 8;
        }
        std::fs::write(&path, &bytes).unwrap();
        let limits = Limits {
            max_inflated_bytes: 8 << 20,
            ..Limits::default()
        };
        let t = std::time::Instant::now();
        let input = open_export_limited(&path, Arc::default(), &limits).unwrap();
        let e = crate::ingest::apple::parse_with(input, &mut NullSink, &limits).unwrap_err();
        eprintln!("bomb refused in {:?}", t.elapsed());
        assert!(matches!(e, ImportError::Limit { .. }), "{e}");
        assert!(e.to_string().contains("more than 8388608 bytes"), "{e}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_zip_declaring_more_than_the_cap_is_refused_before_inflating() {
        let path = temp("declared.zip");
        zip_with(
            &path,
            &[("apple_health_export/export.xml", &vec![b' '; 4 << 20])],
        );
        let limits = Limits {
            max_inflated_bytes: 1 << 20,
            ..Limits::default()
        };
        let input = open_export_limited(&path, Arc::default(), &limits).unwrap();
        let e = crate::ingest::apple::parse_with(input, &mut NullSink, &limits).unwrap_err();
        assert!(
            matches!(&e, ImportError::Limit { position: 0, message } if message.contains("declares 4194304 bytes")),
            "{e}"
        );
        // Within the caps the same file reads to its end.
        let loose = Limits {
            max_inflate_ratio: 10_000,
            max_xml_event_bytes: 8 << 20,
            ..Limits::default()
        };
        let input = open_export_limited(&path, Arc::default(), &loose).unwrap();
        let e = crate::ingest::apple::parse_with(input, &mut NullSink, &loose).unwrap_err();
        assert!(matches!(e, ImportError::Empty), "{e}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn any_export_xml_inside_a_zip_is_found() {
        let path = temp("renamed.zip");
        let body = b"<HealthData locale=\"en_US\"></HealthData>";
        zip_with(&path, &[("Export/export.xml", body)]);
        let report = parse(open_export(&path).unwrap(), &mut NullSink).unwrap();
        assert_eq!(report.bytes, body.len() as u64);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn zip_without_export_and_empty_files_are_errors() {
        let path = temp("noexport.zip");
        zip_with(&path, &[("apple_health_export/export_cda.xml", b"<x/>")]);
        assert!(matches!(
            open_export(&path),
            Err(ImportError::NoExportInZip)
        ));
        std::fs::remove_file(&path).unwrap();
        let empty = temp("empty.xml");
        std::fs::write(&empty, b"").unwrap();
        let e = parse(open_export(&empty).unwrap(), &mut NullSink).unwrap_err();
        assert!(matches!(e, ImportError::Empty));
        std::fs::remove_file(&empty).unwrap();
        assert!(matches!(
            open_export(Path::new("/nonexistent/export.xml")),
            Err(ImportError::Open(_))
        ));
    }

    #[test]
    fn truncated_zip_entry_is_an_error() {
        let mut xml = Vec::new();
        generate(&mut xml, 4, 1_000_000).unwrap();
        let path = temp("cut.zip");
        zip_with(
            &path,
            &[("apple_health_export/export.xml", &xml[..xml.len() / 2])],
        );
        let e = parse(open_export(&path).unwrap(), &mut NullSink).unwrap_err();
        assert!(
            matches!(
                e,
                ImportError::Truncated { .. } | ImportError::Malformed { .. }
            ),
            "{e}"
        );
        assert!(e.position().unwrap() > 0);
        std::fs::remove_file(path).unwrap();
    }
}
