//! LISTEN for the log's commit notifications (see migrations/0001: `wearhouse_log`).

use std::time::Duration;

use futures::StreamExt;
use tracing::warn;

/// Calls `wake` on every notification, reconnecting forever; callers also poll, so a lost
/// connection only adds latency.
pub async fn forward_notifications(config: tokio_postgres::Config, wake: impl Fn()) {
    loop {
        match config
            .connect(wearhouse_projections::pgtls::connector())
            .await
        {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let pump = tokio::spawn(async move {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(msg)) = messages.next().await {
                        if let tokio_postgres::AsyncMessage::Notification(_) = msg {
                            let _ = tx.send(());
                        }
                    }
                });
                if let Err(e) = client.batch_execute("LISTEN wearhouse_log").await {
                    warn!(error = %e, "LISTEN failed; relying on polling");
                }
                while rx.recv().await.is_some() {
                    wake();
                }
                pump.abort();
            }
            Err(e) => warn!(error = %e, "log listener cannot connect; relying on polling"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
