//! The model as the agent sees it: one call per turn. `ModelClient` implements it; tests may
//! substitute their own.

use errand_model::{ModelClient, ModelError, ModelProgress, ModelRequest, ModelTurn};
use errand_protocol::EventKind;
use tokio::sync::mpsc;

use crate::events::EventSink;

#[async_trait::async_trait]
pub trait Model: Send + Sync {
    async fn turn(
        &self,
        request: &ModelRequest,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError>;
}

#[async_trait::async_trait]
impl Model for ModelClient {
    async fn turn(
        &self,
        request: &ModelRequest,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError> {
        ModelClient::turn(self, request, progress).await
    }
}

/// One model call whose retries are recorded as `model_retry` events as they happen, so a person
/// following the log sees why a turn is slow while it still is.
pub(crate) async fn turn_recording_retries(
    model: &dyn Model,
    request: &ModelRequest,
    sink: &mut dyn EventSink,
) -> Result<ModelTurn, ModelError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<EventKind>();
    let call = async move {
        let mut progress = move |progress| {
            if let ModelProgress::Retrying { attempt, delay, error } = progress {
                let delay_ms = delay.as_millis() as u64;
                let _ = tx.send(EventKind::ModelRetry { attempt, delay_ms, error });
            }
        };
        model.turn(request, &mut progress).await
    };
    let record = async {
        while let Some(kind) = rx.recv().await {
            sink.record(kind).await;
        }
    };
    let (result, ()) = tokio::join!(call, record);
    result
}
