//! Raw payload storage: every inbound byte is kept, zstd-compressed, content-addressed by
//! SHA-256, before anything parses it. Large payloads are split into chunks so memory stays flat.

use std::io::{Read, Write};
use std::path::Path;

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use wearhouse_domain::import::RawPayloadRef;

/// Uncompressed bytes per stored chunk.
pub const CHUNK: usize = 8 << 20;
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("reading the payload: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {}", wearhouse_log::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("the compressing task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("raw payload {0} not found")]
    NotFound(String),
}

/// What a payload is, for the `raw_payloads` row.
pub struct RawMeta<'a> {
    pub provider: &'a str,
    pub kind: &'a str,
    pub content_type: &'a str,
    pub user_id: Option<uuid::Uuid>,
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Stores the file at `path` (whose SHA-256 is `sha256`) unless the same bytes are already
/// stored. Chunks are compressed on a blocking thread while earlier ones are inserted.
pub async fn store_file(
    pool: &Pool,
    path: &Path,
    sha256: &str,
    meta: RawMeta<'_>,
) -> Result<RawPayloadRef, RawError> {
    let client = pool.get().await?;
    if let Some(row) = client
        .query_opt(
            "SELECT size, chunks, content_type FROM raw_payloads WHERE sha256 = $1",
            &[&sha256],
        )
        .await?
    {
        return Ok(RawPayloadRef {
            sha256: sha256.to_string(),
            size: row.get(0),
            chunks: row.get(1),
            content_type: row.get(2),
            provider: meta.provider.into(),
            kind: meta.kind.into(),
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    let file_path = path.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&file_path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut buf = vec![0u8; CHUNK];
        let mut compressor = match zstd::bulk::Compressor::new(ZSTD_LEVEL) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            // The output is allocated for the worst case (the whole chunk): trimmed to what it
            // holds, chunks waiting in the channel take a few hundred KB, not 8 MiB each.
            let compressed = compressor.compress(&buf[..filled]).map(|mut c| {
                c.shrink_to_fit();
                c
            });
            if tx.blocking_send(compressed).is_err() || filled < CHUNK {
                return;
            }
        }
    });
    let mut chunks = 0i32;
    while let Some(chunk) = rx.recv().await {
        let data = chunk?;
        client
            .execute(
                "INSERT INTO raw_payload_chunks (sha256, chunk, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&sha256, &chunks, &data],
            )
            .await?;
        chunks += 1;
    }
    reader.await?;
    let size = std::fs::metadata(path)?.len() as i64;
    client
        .execute(
            "INSERT INTO raw_payloads (sha256, size, chunks, content_type, provider, kind, user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sha256) DO NOTHING",
            &[&sha256, &size, &chunks, &meta.content_type, &meta.provider, &meta.kind, &meta.user_id],
        )
        .await?;
    // Megabyte chunks grew this connection's buffers; close it rather than pool them.
    drop(deadpool_postgres::Object::take(client));
    Ok(RawPayloadRef {
        sha256: sha256.to_string(),
        size,
        chunks,
        content_type: meta.content_type.into(),
        provider: meta.provider.into(),
        kind: meta.kind.into(),
    })
}

/// Writes the original bytes of payload `sha256` to `out`, one chunk at a time.
pub async fn write_to(
    pool: &Pool,
    sha256: &str,
    out: &mut (impl Write + Send),
) -> Result<u64, RawError> {
    let client = pool.get().await?;
    let chunks: i32 = client
        .query_opt(
            "SELECT chunks FROM raw_payloads WHERE sha256 = $1",
            &[&sha256],
        )
        .await?
        .ok_or_else(|| RawError::NotFound(sha256.into()))?
        .get(0);
    let mut written = 0u64;
    for i in 0..chunks {
        let row = client
            .query_one(
                "SELECT data FROM raw_payload_chunks WHERE sha256 = $1 AND chunk = $2",
                &[&sha256, &i],
            )
            .await?;
        let data: Vec<u8> = row.get(0);
        let plain = zstd::stream::decode_all(&data[..])?;
        out.write_all(&plain)?;
        written += plain.len() as u64;
    }
    Ok(written)
}

/// The content type of payload `sha256` and its original bytes as a stream, one chunk read
/// and decompressed at a time (a payload can be gigabytes).
pub async fn stream(
    pool: &Pool,
    sha256: &str,
) -> Result<
    (
        String,
        impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    ),
    RawError,
> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT chunks, content_type FROM raw_payloads WHERE sha256 = $1",
            &[&sha256],
        )
        .await?
        .ok_or_else(|| RawError::NotFound(sha256.into()))?;
    let (chunks, content_type): (i32, String) = (row.get(0), row.get(1));
    let pool = pool.clone();
    let sha256 = sha256.to_string();
    let body = futures::stream::unfold(0i32, move |i| {
        let (pool, sha256) = (pool.clone(), sha256.clone());
        async move {
            if i >= chunks {
                return None;
            }
            let read = async {
                let data: Vec<u8> = pool
                    .get()
                    .await
                    .map_err(std::io::Error::other)?
                    .query_one(
                        "SELECT data FROM raw_payload_chunks WHERE sha256 = $1 AND chunk = $2",
                        &[&sha256, &i],
                    )
                    .await
                    .map_err(std::io::Error::other)?
                    .get(0);
                Ok(bytes::Bytes::from(zstd::stream::decode_all(&data[..])?))
            };
            Some((read.await, i + 1))
        }
    });
    Ok((content_type, body))
}

/// An in-memory payload hashed and compressed, ready to store ([`store_prepared`]): the CPU
/// work, done before a connection is taken.
pub struct Prepared {
    pub sha256: String,
    pub size: i64,
    /// The zstd-compressed chunks, in order.
    pub chunks: Vec<Vec<u8>>,
}

/// Hashes and compresses `bytes` (CPU only).
pub fn prepare(bytes: &[u8]) -> Result<Prepared, RawError> {
    Ok(Prepared {
        sha256: hex::encode(Sha256::digest(bytes)),
        size: bytes.len() as i64,
        chunks: bytes
            .chunks(CHUNK)
            .map(|part| zstd::bulk::compress(part, ZSTD_LEVEL))
            .collect::<std::io::Result<_>>()?,
    })
}

/// Stores a prepared payload unless the same bytes are already stored, with one statement,
/// on whatever client (or transaction) it is given.
pub async fn store_prepared(
    client: &impl tokio_postgres::GenericClient,
    p: &Prepared,
    meta: RawMeta<'_>,
) -> Result<RawPayloadRef, RawError> {
    let chunks = p.chunks.len() as i32;
    client
        .execute(
            "WITH c AS (INSERT INTO raw_payload_chunks (sha256, chunk, data) \
                        SELECT $1, (t.i - 1)::int4, t.d FROM unnest($2::bytea[]) WITH ORDINALITY AS t(d, i) \
                        ON CONFLICT DO NOTHING) \
             INSERT INTO raw_payloads (sha256, size, chunks, content_type, provider, kind, user_id) \
             VALUES ($1, $3, $4, $5, $6, $7, $8) ON CONFLICT (sha256) DO NOTHING",
            &[&p.sha256, &p.chunks, &p.size, &chunks, &meta.content_type, &meta.provider, &meta.kind, &meta.user_id],
        )
        .await?;
    Ok(RawPayloadRef {
        sha256: p.sha256.clone(),
        size: p.size,
        chunks,
        content_type: meta.content_type.into(),
        provider: meta.provider.into(),
        kind: meta.kind.into(),
    })
}

/// Stores an in-memory payload (a provider response or webhook body) unless the same bytes are
/// already stored. Such bodies are small, so they go in one statement.
pub async fn store_bytes(
    pool: &Pool,
    bytes: &[u8],
    meta: RawMeta<'_>,
) -> Result<RawPayloadRef, RawError> {
    let prepared = prepare(bytes)?;
    let client = pool.get().await?;
    store_prepared(&**client, &prepared, meta).await
}
