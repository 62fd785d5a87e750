//! librdkafka's in-process mock cluster, the broker of `ioc demo` and of the tests by default.

use std::sync::mpsc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaErrorCode;

/// What the owner may ask of the broker's thread.
enum Command {
    /// Refuse connections (`true`) or take them again (`false`).
    Down(bool),
    /// Delay every answer by this much, as a slow or distant broker would.
    RoundTrip(Duration),
}

type Reply = mpsc::Sender<Result<(), KafkaError>>;

/// librdkafka's in-process mock cluster, kept on a thread of its own (it is not `Send`) until
/// dropped. Its limits: about 5 MB per partition (older records vanish) and nothing survives
/// the process. Tests and the load harness can take it down and slow it to see how the stages
/// behave when the broker is away or overloaded.
pub struct EmbeddedBroker {
    bootstrap: String,
    commands: Option<mpsc::Sender<(Command, Reply)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The id of the mock cluster's only broker.
const BROKER_ID: i32 = 1;

impl EmbeddedBroker {
    /// Starts a one-broker cluster with the given topics and partition count.
    pub fn start(topics: &[&str], partitions: i32) -> Result<EmbeddedBroker, KafkaError> {
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (command_tx, command_rx) = mpsc::channel::<(Command, Reply)>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for t in &topics {
                    if let Err(e) = cluster.create_topic(t, partitions, 1) {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Serves commands until the owner drops the sender.
                while let Ok((command, reply)) = command_rx.recv() {
                    let done = match command {
                        Command::Down(true) => cluster.broker_down(BROKER_ID),
                        Command::Down(false) => cluster.broker_up(BROKER_ID),
                        Command::RoundTrip(d) => cluster.broker_round_trip_time(BROKER_ID, d),
                    };
                    let _ = reply.send(done);
                }
            })
            .expect("spawn embedded broker thread");
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| KafkaError::MockCluster(RDKafkaErrorCode::Fail))??;
        Ok(EmbeddedBroker {
            bootstrap,
            commands: Some(command_tx),
            thread: Some(thread),
        })
    }

    /// The `bootstrap.servers` value for clients.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Takes the broker away (connections dropped and refused) or brings it back.
    pub fn set_down(&self, down: bool) -> Result<(), KafkaError> {
        self.command(Command::Down(down))
    }

    /// Delays every answer of the broker by `delay` (zero: answer at once).
    pub fn set_round_trip(&self, delay: Duration) -> Result<(), KafkaError> {
        self.command(Command::RoundTrip(delay))
    }

    fn command(&self, command: Command) -> Result<(), KafkaError> {
        let gone = || KafkaError::MockCluster(RDKafkaErrorCode::Fail);
        let (reply_tx, reply_rx) = mpsc::channel();
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send((command, reply_tx))
            .map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
