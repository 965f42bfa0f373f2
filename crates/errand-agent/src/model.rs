//! The model as the agent sees it: one call per turn. `ModelClient` implements it; tests may
//! substitute their own.

use errand_model::{ModelClient, ModelError, ModelProgress, ModelRequest, ModelTurn};

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
