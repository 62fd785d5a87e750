//! Every Prometheus metric of the pipeline, declared once. Names follow `ioc_<what>_<unit>`,
//! counters end in `_total`, and labels come from bounded sets (stage, kind, reason, rule, topic,
//! partition), never from ids or raw error text.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The pipeline's metrics, registered into one [`Registry`]. Stages that run in one process (as in
/// `ioc demo`) share one instance; the `stage` label keeps their series apart.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Records or requests taken in, by stage and kind (`report`, `camera_event`, `incident`).
    pub events_in: IntCounterVec,
    /// Records written out, by stage and kind.
    pub events_out: IntCounterVec,
    /// Inputs refused, by stage and reason code.
    pub rejected: IntCounterVec,
    /// Records sent to the dead-letter topic, by reason code.
    pub dead_lettered: IntCounterVec,
    /// Incidents routed, by the rule that chose the ward.
    pub assigned: IntCounterVec,
    /// Reports written again under a tracking id already routed (resent to another ingest),
    /// which the router leaves alone.
    pub resent_reports: IntCounter,
    /// Time of one ward lookup.
    pub lookup_seconds: HistogramVec,
    /// Time from produce to broker acknowledgement.
    pub produce_seconds: HistogramVec,
    /// Writes refused at once by the admission gate (too many waiting, or the broker away).
    pub produce_refusals: IntCounterVec,
    /// Messages between a consumer's position and the partition's end.
    pub consumer_lag: IntGaugeVec,
    /// Incidents held by the dashboard, by status.
    pub dashboard_incidents: IntGaugeVec,
    /// Partitions currently assigned to this process's consumer, by stage.
    pub assigned_partitions: IntGaugeVec,
    /// Lifecycle changes written, by action (`acknowledge`, `escalate`, `auto_close`, ...).
    pub lifecycle_actions: IntCounterVec,
    /// Missed service-level targets, by target (`acknowledge`, `resolve`) and category.
    pub escalations: IntCounterVec,
    /// Open incidents handed over when a new boundary set took effect, by that set and outcome
    /// (`handed_over` to a ward of the new set, `triage` when none holds the place).
    pub handovers: IntCounterVec,
    /// HTTP requests answered, by stage, route template (never the raw path) and status code.
    pub http_requests: IntCounterVec,
    /// Time to answer an HTTP request (to the response head), by stage and route template.
    pub http_seconds: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let events_in = counter("ioc_events_in_total", "Inputs taken in", &["stage", "kind"]);
        let events_out = counter(
            "ioc_events_out_total",
            "Records written out",
            &["stage", "kind"],
        );
        let produce_refusals = counter(
            "ioc_kafka_produce_refused_total",
            "Writes refused at once because too many were waiting for the broker or it was away",
            &["stage"],
        );
        let rejected = counter(
            "ioc_events_rejected_total",
            "Inputs refused",
            &["stage", "reason"],
        );
        let dead_lettered = counter(
            "ioc_dead_lettered_total",
            "Records sent to the dead-letter topic",
            &["reason"],
        );
        let assigned = counter("ioc_incidents_routed_total", "Incidents routed", &["rule"]);
        let resent_reports = IntCounter::new(
            "ioc_reports_resent_total",
            "Reports written again under a tracking id already routed, not routed again",
        )
        .expect("valid metric");
        registry
            .register(Box::new(resent_reports.clone()))
            .expect("metric registered once");
        let lifecycle_actions = counter(
            "ioc_lifecycle_actions_total",
            "Incident lifecycle changes written",
            &["action"],
        );
        let escalations = counter(
            "ioc_escalations_total",
            "Service-level targets missed",
            &["target", "category"],
        );
        let handovers = counter(
            "ioc_handovers_total",
            "Open incidents handed over to a new boundary set",
            &["boundary_version", "outcome"],
        );
        let http_requests = counter(
            "ioc_http_requests_total",
            "HTTP requests answered",
            &["stage", "route", "status"],
        );
        let histogram = |name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("metric registered once");
            h
        };
        let lookup_seconds = histogram(
            "ioc_ward_lookup_seconds",
            "Time of one ward lookup",
            prometheus::exponential_buckets(1e-7, 4.0, 10).expect("valid buckets"),
            &["set"],
        );
        let produce_seconds = histogram(
            "ioc_kafka_produce_seconds",
            "Time from produce to broker acknowledgement",
            prometheus::exponential_buckets(5e-4, 2.0, 14).expect("valid buckets"),
            &["stage"],
        );
        let http_seconds = histogram(
            "ioc_http_request_duration_seconds",
            "Time to answer an HTTP request",
            prometheus::exponential_buckets(2.5e-4, 2.0, 16).expect("valid buckets"),
            &["stage", "route"],
        );
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let consumer_lag = gauge(
            "ioc_consumer_lag_messages",
            "Messages between the consumer's position and the end of the partition",
            &["stage", "topic", "partition"],
        );
        let dashboard_incidents = gauge(
            "ioc_dashboard_incidents",
            "Incidents held by the dashboard",
            &["status"],
        );
        let assigned_partitions = gauge(
            "ioc_consumer_assigned_partitions",
            "Partitions assigned to this process's consumer",
            &["stage"],
        );
        Metrics {
            registry,
            assigned_partitions,
            events_in,
            events_out,
            rejected,
            dead_lettered,
            assigned,
            resent_reports,
            lookup_seconds,
            produce_seconds,
            produce_refusals,
            consumer_lag,
            dashboard_incidents,
            lifecycle_actions,
            escalations,
            handovers,
            http_requests,
            http_seconds,
        }
    }

    /// Sum of every series of a metric family (all label values), e.g. for a status line.
    pub fn total(&self, name: &str) -> f64 {
        use prometheus::proto::MetricType;
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| {
                let kind = f.get_field_type();
                f.get_metric().iter().map(move |m| match kind {
                    MetricType::COUNTER => m.get_counter().get_value(),
                    MetricType::GAUGE => m.get_gauge().get_value(),
                    _ => 0.0,
                })
            })
            .sum()
    }

    /// The text exposition format served at `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("text encoder writes UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
