//! Every stage's long-running tasks under one supervisor: one cancellation token for all of them,
//! and any task that fails (or panics) cancels the others and makes the stage end with its error,
//! so a forwarder that cannot start stops the process loudly instead of going unnoticed.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
pub use tokio_util::sync::CancellationToken;

/// The tasks of one stage.
pub struct Supervisor {
    token: CancellationToken,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor {
            token: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    /// The token every task watches; cancelled at shutdown or when a task fails.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Starts a task. It should end soon after the token is cancelled; ending earlier with
    /// `Ok` is fine (a task with nothing to do), ending with an error stops the stage.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Runs until `shutdown` completes or a task fails, then cancels every task and waits up to
    /// `deadline` for them to finish. Returns the first failure.
    pub async fn run(
        mut self,
        stage: &str,
        shutdown: impl Future<Output = ()>,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let mut failure: Option<anyhow::Error> = None;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.token.cancelled() => break,
                joined = self.tasks.join_next() => match joined {
                    None => break,
                    Some(result) => {
                        if let Some(e) = failed(stage, result) {
                            failure = Some(e);
                            break;
                        }
                    }
                },
            }
        }
        self.token.cancel();
        let drained = tokio::time::timeout(deadline, async {
            while let Some(result) = self.tasks.join_next().await {
                if let Some(e) = failed(stage, result) {
                    failure.get_or_insert(e);
                }
            }
        })
        .await;
        if drained.is_err() {
            let left = self.tasks.len();
            self.tasks.abort_all();
            tracing::warn!("{stage}: {left} task(s) did not stop within {deadline:?}; aborted");
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The error of a task that failed or panicked, logged once here.
fn failed(
    stage: &str,
    joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> Option<anyhow::Error> {
    match joined {
        Ok((_, Ok(()))) => None,
        Ok((name, Err(e))) => {
            tracing::error!("{stage}: {name} failed, stopping the stage: {e:#}");
            Some(e.context(format!("{stage}: {name} failed")))
        }
        Err(e) if e.is_cancelled() => None,
        Err(e) => {
            tracing::error!("{stage}: a task panicked, stopping the stage: {e}");
            Some(anyhow::anyhow!("{stage}: a task panicked: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_task_cancels_the_others_and_is_the_result() {
        let mut s = Supervisor::new();
        let token = s.token();
        s.spawn("waits", async move {
            token.cancelled().await;
            Ok(())
        });
        s.spawn("fails", async { Err(anyhow::anyhow!("cannot subscribe")) });
        let err = s
            .run("test", std::future::pending(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("cannot subscribe"), "{err:#}");
    }

    #[tokio::test]
    async fn shutdown_cancels_every_task_and_a_task_with_nothing_to_do_may_end_early() {
        let mut s = Supervisor::new();
        let token = s.token();
        s.spawn("idle", async { Ok(()) });
        s.spawn("works", async move {
            token.cancelled().await;
            Ok(())
        });
        s.run("test", async {}, Duration::from_secs(5))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_panicking_task_stops_the_stage() {
        let mut s = Supervisor::new();
        s.spawn("panics", async { panic!("boom") });
        assert!(s
            .run("test", std::future::pending(), Duration::from_secs(5))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_task_that_ignores_cancellation_is_aborted_at_the_deadline() {
        let mut s = Supervisor::new();
        s.spawn("stuck", std::future::pending());
        s.run("test", async {}, Duration::from_secs(1))
            .await
            .unwrap();
    }
}
