//! Contracts for the outside world, generated from the Rust types so they cannot drift from them:
//! JSON Schemas (draft 2020-12) of every record on every topic ([`record_schemas`]), and a small
//! builder of OpenAPI 3.1 documents ([`Api`]) that each stage fills with its operations.
//!
//! Request bodies are described as they are *read* (fields with defaults are optional) and
//! inlined; responses and records as they are *written* (fields skipped when empty are
//! optional), with shared parts under `#/components/schemas`.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::{
    AssignmentRecord, CameraEvent, DeadLetter, EnforcementRecord, Incident, Report,
    ASSIGNMENT_SCHEMA, CAMERA_EVENT_SCHEMA, DEAD_LETTER_SCHEMA, INCIDENT_SCHEMA, REPORT_SCHEMA,
    VIOLATION_SCHEMA,
};

/// The schema of one kind of Kafka record.
#[derive(Debug, Clone)]
pub struct RecordSchema {
    /// The record's `schema` value, e.g. `ioc.incident.v1`; also the file name's stem.
    pub name: &'static str,
    /// Which topic carries it, in the configuration's terms (`topics.<role>`).
    pub topic_role: &'static str,
    pub schema: Value,
}

/// Every record type on every topic, as JSON Schema 2020-12.
pub fn record_schemas() -> Vec<RecordSchema> {
    fn one<T: JsonSchema>(
        name: &'static str,
        topic_role: &'static str,
        pinned: bool,
    ) -> RecordSchema {
        let mut schema = SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        schema["$id"] = json!(format!("https://ioc.example/schemas/{name}.json"));
        if pinned {
            // The version string is part of the contract: a consumer refuses other versions.
            schema["properties"]["schema"] = json!({ "const": name });
        }
        RecordSchema {
            name,
            topic_role,
            schema,
        }
    }
    vec![
        one::<Report>(REPORT_SCHEMA, "reports", true),
        // Camera systems may publish straight to the topic without a `schema` field.
        one::<CameraEvent>(CAMERA_EVENT_SCHEMA, "camera_events", false),
        one::<Incident>(INCIDENT_SCHEMA, "incidents", true),
        one::<AssignmentRecord>(ASSIGNMENT_SCHEMA, "assignments", true),
        one::<DeadLetter>(DEAD_LETTER_SCHEMA, "dead_letter", true),
        one::<crate::lifecycle::CommandRecord>(crate::lifecycle::COMMAND_SCHEMA, "commands", true),
        one::<crate::lifecycle::CommandAnswer>(
            crate::lifecycle::COMMAND_ANSWER_SCHEMA,
            "command_results",
            true,
        ),
        one::<crate::Situation>(crate::SITUATION_SCHEMA, "situations", true),
        one::<EnforcementRecord>(VIOLATION_SCHEMA, "violations", true),
    ]
}

/// The body of every refusal of the `/v1` APIs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for a program and for a person.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, e.g. `invalid_location`, `forbidden`, `unavailable`.
    pub code: String,
    /// A sentence saying what to do.
    pub message: String,
    /// For a refused batch: each bad item with its index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemError>>,
}

/// One bad item of a batch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ItemError {
    pub index: usize,
    pub code: String,
    pub message: String,
}

/// An OpenAPI 3.1 document under construction.
pub struct Api {
    doc: Value,
    responses: SchemaGenerator,
    requests: SchemaGenerator,
}

impl Api {
    pub fn new(title: &str, description: &str) -> Api {
        let responses = SchemaSettings::draft2020_12()
            .with(|s| s.definitions_path = "/components/schemas".into())
            .for_serialize()
            .into_generator();
        let requests = SchemaSettings::draft2020_12()
            .with(|s| s.inline_subschemas = true)
            .for_deserialize()
            .into_generator();
        Api {
            doc: json!({
                "openapi": "3.1.0",
                "info": {"title": title, "version": env!("CARGO_PKG_VERSION"), "description": description},
                "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
                "paths": {},
                "components": {"schemas": {}, "securitySchemes": {}},
            }),
            responses,
            requests,
        }
    }

    /// A reference to `T` as written by us (responses).
    pub fn response<T: JsonSchema>(&mut self) -> Value {
        self.responses.subschema_for::<T>().to_value()
    }

    /// `T` as read by us (request bodies), inlined.
    pub fn request<T: JsonSchema>(&mut self) -> Value {
        let mut s = self.requests.root_schema_for::<T>().to_value();
        if let Some(o) = s.as_object_mut() {
            o.remove("$schema");
        }
        s
    }

    /// The query parameters `T` (a struct of optional fields) stands for.
    pub fn query<T: JsonSchema>(&mut self) -> Vec<Value> {
        let s = self.requests.root_schema_for::<T>().to_value();
        let required: Vec<&str> = s["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        s["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, schema)| {
                let mut schema = schema.clone();
                let description = schema
                    .as_object_mut()
                    .and_then(|o| o.remove("description"))
                    .unwrap_or(json!(""));
                json!({
                    "name": name, "in": "query", "required": required.contains(&name.as_str()),
                    "description": description, "schema": schema,
                })
            })
            .collect()
    }

    /// Declares a security scheme (`components.securitySchemes`).
    pub fn security_scheme(&mut self, name: &str, scheme: Value) {
        self.doc["components"]["securitySchemes"][name] = scheme;
    }

    /// Adds one operation at `path` (axum's and OpenAPI's `{param}` syntax agree).
    pub fn add(&mut self, path: &str, op: Op) {
        let method = op.method.to_ascii_lowercase();
        self.doc["paths"][path][method] = op.into_value();
    }

    /// Every `(method, path)` documented, upper-case methods.
    pub fn operations(&self) -> Vec<(String, String)> {
        operations(&self.doc)
    }

    pub fn finish(mut self) -> Value {
        let defs = self.responses.take_definitions(true);
        let schemas = self.doc["components"]["schemas"]
            .as_object_mut()
            .expect("components.schemas is an object");
        schemas.extend(defs);
        self.doc
    }
}

/// Every `(METHOD, path)` of an OpenAPI document.
pub fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            out.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

/// One operation of an [`Api`].
pub struct Op {
    method: &'static str,
    fields: Map<String, Value>,
    responses: Map<String, Value>,
}

impl Op {
    fn new(method: &'static str, summary: &str) -> Op {
        let mut fields = Map::new();
        fields.insert("summary".into(), json!(summary));
        Op {
            method,
            fields,
            responses: Map::new(),
        }
    }

    pub fn get(summary: &str) -> Op {
        Op::new("GET", summary)
    }

    pub fn post(summary: &str) -> Op {
        Op::new("POST", summary)
    }

    pub fn method(&self) -> &'static str {
        self.method
    }

    pub fn describe(mut self, text: &str) -> Op {
        self.fields.insert("description".into(), json!(text));
        self
    }

    pub fn tag(mut self, tag: &str) -> Op {
        self.fields.insert("tags".into(), json!([tag]));
        self
    }

    /// A path parameter (every `{name}` in the path needs one).
    pub fn path_param(self, name: &str, description: &str) -> Op {
        self.path_param_of(name, description, json!({"type": "string"}))
    }

    /// A path parameter with its own schema (say, an `enum` of the resources it names).
    pub fn path_param_of(self, name: &str, description: &str, schema: Value) -> Op {
        self.param(json!({
            "name": name, "in": "path", "required": true, "description": description,
            "schema": schema,
        }))
    }

    pub fn param(mut self, p: Value) -> Op {
        self.fields
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters is an array")
            .push(p);
        self
    }

    pub fn params(self, ps: Vec<Value>) -> Op {
        ps.into_iter().fold(self, Op::param)
    }

    /// A request body of `content_type` with `schema`.
    pub fn body(mut self, content_type: &str, schema: Value) -> Op {
        self.fields.insert(
            "requestBody".into(),
            json!({"required": true, "content": {content_type: {"schema": schema}}}),
        );
        self
    }

    /// A request body that may come in several content types (`{"<type>": {"schema": …}}`).
    pub fn bodies(mut self, content: Value) -> Op {
        self.fields.insert(
            "requestBody".into(),
            json!({"required": true, "content": content}),
        );
        self
    }

    /// A JSON request body.
    pub fn json_body(self, schema: Value) -> Op {
        self.body("application/json", schema)
    }

    /// A response of `content_type` (`None`: no body described).
    pub fn answers(mut self, status: u16, description: &str, content: Option<(&str, Value)>) -> Op {
        let mut r = json!({ "description": description });
        if let Some((ctype, schema)) = content {
            r["content"] = json!({ ctype: { "schema": schema } });
        }
        if status == 503 || status == 429 {
            r["headers"] = json!({"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}});
        }
        self.responses.insert(status.to_string(), r);
        self
    }

    /// A response with several content types (`{"<type>": {"schema": …}, …}`).
    pub fn answers_in(mut self, status: u16, description: &str, content: Value) -> Op {
        self.responses.insert(
            status.to_string(),
            json!({"description": description, "content": content}),
        );
        self
    }

    /// A JSON response.
    pub fn json(self, status: u16, description: &str, schema: Value) -> Op {
        self.answers(status, description, Some(("application/json", schema)))
    }

    /// Refusals in the common error format, one per status.
    pub fn errors(mut self, api: &mut Api, statuses: &[(u16, &str)]) -> Op {
        let schema = api.response::<ErrorBody>();
        for (status, description) in statuses {
            self = self.json(*status, description, schema.clone());
        }
        self
    }

    /// Requires one of the named security schemes.
    pub fn security(mut self, schemes: &[&str]) -> Op {
        let list: Vec<Value> = schemes.iter().map(|s| json!({ *s: [] })).collect();
        self.fields.insert("security".into(), json!(list));
        self
    }

    fn into_value(self) -> Value {
        let mut v = Value::Object(self.fields);
        v["responses"] = Value::Object(self.responses);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_schemas_describe_real_records() {
        let schemas = record_schemas();
        assert_eq!(schemas.len(), 9);
        let incident = &schemas[2];
        assert_eq!(incident.name, INCIDENT_SCHEMA);
        let props = incident.schema["properties"].as_object().unwrap();
        for field in ["id", "revision", "status", "ward", "history", "sla_due_at"] {
            assert!(props.contains_key(field), "{field}");
        }
        // Private fields exist only on the input topics.
        assert!(!props.contains_key("reporter") && !props.contains_key("plate"));
        let report = &schemas[0].schema["properties"];
        assert!(report.get("reporter").is_some());
        assert_eq!(report["schema"]["const"], REPORT_SCHEMA);
    }

    #[test]
    fn an_api_lists_its_operations_and_shares_schemas() {
        let mut api = Api::new("t", "d");
        let incident = api.response::<Incident>();
        let op = Op::get("one")
            .path_param("id", "x")
            .json(200, "ok", incident);
        let op = op.errors(&mut api, &[(404, "none")]);
        api.add("/v1/incidents/{id}", op);
        assert_eq!(
            api.operations(),
            vec![("GET".to_string(), "/v1/incidents/{id}".to_string())]
        );
        let doc = api.finish();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["components"]["schemas"]["Incident"].is_object());
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        assert_eq!(
            doc["paths"]["/v1/incidents/{id}"]["get"]["responses"]["200"]["content"]
                ["application/json"]["schema"]["$ref"],
            "#/components/schemas/Incident"
        );
    }
}
