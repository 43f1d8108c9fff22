//! The API described as an OpenAPI 3.1 document ([`document`]), served at
//! `GET /api/openapi.json` and kept in the repository as `docs/openapi.json` (a test fails when
//! the two differ; `argus openapi > docs/openapi.json` writes it again). The paths are listed
//! here by hand, next to the routes; the bodies' schemas are generated from the canonical views
//! of `argus_model::view` (JSON Schema 2020-12, their doc comments as descriptions).

use argus_model::{
    AlertView, CredentialView, EnterpriseView, RegistryView, SeriesView, TicketEventView,
    TicketView, UserView,
};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::accounts::MAX_TOKEN_DAYS;
use crate::{DEFAULT_PAGE, MAX_PAGE};

/// Why an error may be answered, by status.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "the request is malformed: the line says what is wrong",
        401 => "no valid credentials (session cookie or bearer token)",
        403 => "the caller's role may not do this (on something the caller may see)",
        404 => "not found, or outside the caller's jurisdiction",
        409 => "the change is not allowed in the current state",
        422 => "the Idempotency-Key was used before with another request",
        429 => "too many failed logins: wait Retry-After seconds",
        503 => "the store cannot answer now",
        _ => "error",
    }
}

/// Builds the document: schemas collected as the paths refer to them.
struct Builder {
    generator: SchemaGenerator,
    paths: Map<String, Value>,
}

impl Builder {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    fn list<T: JsonSchema>(&mut self, field: &str, paged: bool) -> Value {
        let item = self.schema::<T>();
        let mut properties = Map::new();
        properties.insert(field.to_owned(), json!({ "type": "array", "items": item }));
        let mut required = vec![json!(field)];
        if paged {
            properties.insert(
                "next".to_owned(),
                json!({
                    "type": ["string", "null"],
                    "description": "the cursor of the next page (pass it as `cursor`); null on the last page"
                }),
            );
            required.push(json!("next"));
        }
        json!({ "type": "object", "properties": properties, "required": required })
    }

    fn wrapped<T: JsonSchema>(&mut self, field: &str) -> Value {
        let item = self.schema::<T>();
        json!({ "type": "object", "properties": { field: item }, "required": [field] })
    }

    /// One operation: `method` on `path`, answering `status` with `body` (JSON schema, or
    /// none), or one of `errors`.
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        method: &str,
        path: &str,
        summary: &str,
        parameters: Vec<Value>,
        request: Option<Value>,
        (status, body): (u16, Option<Value>),
        errors: &[u16],
        public: bool,
    ) {
        let mut responses = Map::new();
        let mut ok = json!({ "description": "done" });
        if let Some(body) = body {
            ok["content"] = json!({ "application/json": { "schema": body } });
        }
        responses.insert(status.to_string(), ok);
        let mut codes: Vec<u16> = errors.to_vec();
        if !public {
            codes.extend([401, 503]);
        }
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            responses.insert(
                code.to_string(),
                json!({
                    "description": reason(code),
                    "content": { "text/plain": { "schema": { "type": "string" } } }
                }),
            );
        }
        let mut operation = json!({
            "summary": summary,
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.'], "_")),
            "responses": responses,
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(schema) = request {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": schema } }
            });
        }
        if public {
            operation["security"] = json!([]);
        }
        let entry = self
            .paths
            .entry(path.to_owned())
            .or_insert_with(|| json!({}));
        entry[method] = operation;
    }
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description })
}

fn required_query(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": true, "schema": schema, "description": description })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" }, "description": description })
}

fn idempotency_key() -> Value {
    json!({
        "name": "Idempotency-Key", "in": "header", "required": false,
        "schema": { "type": "string", "pattern": "^[!-~]{1,128}$" },
        "description": "a retry with the same key and request gets the first answer"
    })
}

fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE })
}

fn cursor() -> Value {
    json!({ "type": "string", "pattern": "^-?[0-9]{1,19}\\.[0-9a-fA-F]{16}$" })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

/// The OpenAPI 3.1 document of every route.
pub fn document() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut b = Builder {
        generator,
        paths: Map::new(),
    };
    let text = json!({ "type": "string" });
    let probe = |b: &mut Builder, path: &str, summary: &str| {
        b.op("get", path, summary, vec![], None, (200, None), &[], true);
    };
    probe(&mut b, "/healthz", "the process answers");
    probe(
        &mut b,
        "/metrics",
        "Prometheus metrics (text exposition format)",
    );
    let ready = json!({ "type": "object", "properties": { "ready": { "type": "boolean" }, "stages": { "type": "array" } } });
    b.op(
        "get",
        "/readyz",
        "whether data gets through (503 when a stage holds its work)",
        vec![],
        None,
        (200, Some(ready)),
        &[503],
        true,
    );
    b.op(
        "get",
        "/api/openapi.json",
        "this document",
        vec![],
        None,
        (200, Some(json!({ "type": "object" }))),
        &[],
        true,
    );

    // Accounts.
    let user = b.wrapped::<UserView>("user");
    let login = object(
        json!({ "name": text, "password": text }),
        &["name", "password"],
    );
    b.op(
        "post",
        "/api/login",
        "log in: the user, and the session cookie `argus_session`",
        vec![],
        Some(login),
        (200, Some(user.clone())),
        &[400, 401, 429, 503],
        true,
    );
    b.op(
        "post",
        "/api/logout",
        "end the caller's session (or revoke the token used)",
        vec![],
        None,
        (204, None),
        &[],
        false,
    );
    b.op(
        "get",
        "/api/me",
        "the caller's profile",
        vec![],
        None,
        (200, Some(user)),
        &[],
        false,
    );
    let users = b.list::<UserView>("users", false);
    b.op(
        "get",
        "/api/users",
        "every user (admins)",
        vec![],
        None,
        (200, Some(users)),
        &[403],
        false,
    );
    let roles =
        json!({ "type": "string", "enum": ["admin", "monitor", "dispatcher", "team", "head"] });
    let mut new_user = object(
        json!({
            "name": { "type": "string", "pattern": "^[a-z0-9._-]{1,64}$" },
            "display_name": { "type": "string", "maxLength": 128, "pattern": "\\S" },
            "role": roles,
            "town": text,
            "department": text,
            "password": { "type": "string", "minLength": 12, "maxLength": 1024 }
        }),
        &["name", "display_name", "role", "password"],
    );
    // A team member names a town and a department of the registry, a head a department; the
    // county-wide roles neither.
    let named = json!({ "type": "string", "minLength": 1 });
    new_user["allOf"] = json!([
        {
            "if": { "properties": { "role": { "const": "team" } } },
            "then": { "required": ["town", "department"], "properties": { "town": named, "department": named } }
        },
        {
            "if": { "properties": { "role": { "const": "head" } } },
            "then": { "required": ["department"], "properties": { "department": named, "town": { "const": "" } } }
        },
        {
            "if": { "properties": { "role": { "enum": ["admin", "monitor", "dispatcher"] } } },
            "then": { "properties": { "town": { "const": "" }, "department": { "const": "" } } }
        }
    ]);
    let one_user = b.schema::<UserView>();
    b.op(
        "post",
        "/api/users",
        "add a user (admins)",
        vec![],
        Some(new_user),
        (201, Some(one_user.clone())),
        &[400, 403, 409],
        false,
    );
    b.op(
        "post",
        "/api/users/{name}/disable",
        "disable a user: no login, sessions and tokens revoked (admins)",
        vec![path_param("name", "login name")],
        None,
        (200, Some(one_user.clone())),
        &[403, 404],
        false,
    );
    let password = object(
        json!({
            "password": { "type": "string", "minLength": 12, "maxLength": 1024 },
            "current_password": text
        }),
        &["password"],
    );
    b.op(
        "post",
        "/api/users/{name}/password",
        "set a password (admins; a user their own, with the present one); the user's sessions end",
        vec![path_param("name", "login name")],
        Some(password),
        (200, Some(one_user)),
        &[400, 403, 404],
        false,
    );
    let tokens = b.list::<CredentialView>("tokens", false);
    b.op(
        "get",
        "/api/tokens",
        "the caller's API tokens",
        vec![],
        None,
        (200, Some(tokens)),
        &[],
        false,
    );
    let credential = b.schema::<CredentialView>();
    let made = json!({
        "type": "object",
        "properties": { "token": { "type": "string", "description": "the secret, shown this once" }, "credential": credential.clone() },
        "required": ["token", "credential"]
    });
    let new_token = object(
        json!({
            "name": { "type": "string", "maxLength": 64, "pattern": "\\S" },
            "days": { "type": "integer", "minimum": 1, "maximum": MAX_TOKEN_DAYS, "default": 90 }
        }),
        &["name"],
    );
    b.op(
        "post",
        "/api/tokens",
        "make an API token of the caller's",
        vec![],
        Some(new_token),
        (201, Some(made)),
        &[400],
        false,
    );
    b.op(
        "delete",
        "/api/tokens/{id}",
        "revoke a token (the caller's; admins anyone's)",
        vec![path_param("id", "the token's public id")],
        None,
        (200, Some(credential)),
        &[404],
        false,
    );

    // Alerts.
    let severity = json!({ "type": "string", "enum": ["blue", "yellow", "orange", "red"] });
    let alerts = b.list::<AlertView>("alerts", true);
    let alert_filters = vec![
        query("from", time(), "alerts active at or after this time"),
        query("to", time(), "alerts that started before this time"),
        query("town", text.clone(), "the enterprise's town (registry id)"),
        query(
            "department",
            text.clone(),
            "alerts behind a ticket of this department",
        ),
        query("enterprise", text.clone(), "the enterprise (registry id)"),
        query(
            "point",
            json!({ "type": "string", "minLength": 1, "maxLength": 64 }),
            "the point (MN or device id)",
        ),
        query(
            "kind",
            json!({ "type": "string", "minLength": 1, "maxLength": 64 }),
            "the alert kind",
        ),
        query("severity", severity, "the severity"),
        query(
            "status",
            json!({ "type": "string", "enum": ["firing", "resolved"] }),
            "firing or resolved",
        ),
        query(
            "muted",
            json!({ "type": "boolean" }),
            "muted by a notice or silence, or not",
        ),
        query(
            "acknowledged",
            json!({ "type": "boolean" }),
            "acknowledged, or not",
        ),
        query("limit", limit(), "page size"),
        query("cursor", cursor(), "the `next` of the page before"),
    ];
    b.op(
        "get",
        "/api/alerts",
        "search the alerts the caller may see, newest start first",
        alert_filters,
        None,
        (200, Some(alerts)),
        &[400],
        false,
    );
    let alert = b.schema::<AlertView>();
    let series = b.schema::<SeriesView>();
    let detail = json!({
        "type": "object",
        "properties": {
            "alert": alert.clone(),
            "transitions": { "type": "array", "items": alert.clone() },
            "readings": { "anyOf": [series.clone(), { "type": "null" }] }
        },
        "required": ["alert", "transitions", "readings"]
    });
    b.op(
        "get",
        "/api/alerts/{id}",
        "an alert with its transitions and the readings around it",
        vec![path_param("id", "16 hex digits")],
        None,
        (200, Some(detail)),
        &[404],
        false,
    );
    let ack = object(json!({ "note": text }), &[]);
    b.op(
        "post",
        "/api/alerts/{id}/ack",
        "acknowledge an alert (monitors)",
        vec![path_param("id", "16 hex digits"), idempotency_key()],
        Some(ack),
        (200, Some(alert)),
        &[400, 403, 404, 409, 422],
        false,
    );

    // Tickets.
    let tickets = b.list::<TicketView>("tickets", true);
    let ticket_filters = vec![
        query("department", text.clone(), "the department responsible"),
        query("town", text.clone(), "the town"),
        query("enterprise", text.clone(), "the enterprise"),
        query(
            "state",
            json!({ "type": "string", "pattern": "^(new|dispatched|accepted|inspecting|rectification_ordered|closed)(,(new|dispatched|accepted|inspecting|rectification_ordered|closed))*$" }),
            "states, comma-separated",
        ),
        query("due_before", time(), "with a deadline before this time"),
        query(
            "order",
            json!({ "type": "string", "enum": ["created", "deadline"] }),
            "newest first, or soonest deadline first",
        ),
        query("limit", limit(), "page size"),
        query("cursor", cursor(), "the `next` of the page before"),
    ];
    b.op(
        "get",
        "/api/tickets",
        "search the tickets the caller may see",
        ticket_filters,
        None,
        (200, Some(tickets)),
        &[400],
        false,
    );
    let ticket = b.schema::<TicketView>();
    let event = b.schema::<TicketEventView>();
    let record = json!({
        "type": "object",
        "properties": {
            "ticket": ticket,
            "record": { "type": "array", "items": event.clone() },
            "chain_head": { "type": "string", "description": "the last line's hash" },
            "next": {
                "type": "array",
                "items": { "type": "string" },
                "description": "the states the caller may move it to now"
            }
        },
        "required": ["ticket", "record", "chain_head", "next"]
    });
    b.op(
        "get",
        "/api/tickets/{id}",
        "a ticket with its whole record",
        vec![path_param("id", "16 hex digits")],
        None,
        (200, Some(record)),
        &[404],
        false,
    );
    b.op(
        "get",
        "/api/tickets/{id}/record.html",
        "the ticket's legal record as a printable page (text/html)",
        vec![path_param("id", "16 hex digits")],
        None,
        (200, None),
        &[404],
        false,
    );
    let states = json!({ "type": "string", "enum": ["new", "dispatched", "accepted", "inspecting", "rectification_ordered", "closed"] });
    let outcomes = json!({ "type": "string", "enum": ["violation_confirmed", "false_alarm", "equipment_fault"] });
    let change = object(
        json!({ "to": states, "note": text, "outcome": outcomes }),
        &["to"],
    );
    b.op(
        "post",
        "/api/tickets/{id}/state",
        "move a ticket (dispatchers, teams, heads): the line recorded",
        vec![path_param("id", "16 hex digits"), idempotency_key()],
        Some(change),
        (200, Some(event)),
        &[400, 403, 404, 409, 422],
        false,
    );

    // Silences, the stream.
    let silence = object(
        json!({
            "enterprise": text,
            "points": { "type": "array", "items": text },
            "from": time(),
            "to": time(),
            "reason": text
        }),
        &["enterprise", "from", "to", "reason"],
    );
    b.op(
        "post",
        "/api/silences",
        "silence an enterprise (or some of its points) for a window (monitors)",
        vec![idempotency_key()],
        Some(silence),
        (200, None),
        &[400, 403, 422],
        false,
    );
    b.op("get", "/api/stream", "Server-Sent Events of alert transitions and ticket changes (text/event-stream)", vec![json!({ "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "string" } })], None, (200, None), &[], false);

    // The registry, readings.
    let registry = b.schema::<RegistryView>();
    b.op(
        "get",
        "/api/registry",
        "the county's towns, departments, teams and standards",
        vec![],
        None,
        (200, Some(registry)),
        &[],
        false,
    );
    let enterprises = b.list::<EnterpriseView>("enterprises", false);
    b.op(
        "get",
        "/api/enterprises",
        "the enterprises the caller may see, with points and limits",
        vec![
            query("town", text.clone(), "the town"),
            query("department", text.clone(), "a department supervising them"),
        ],
        None,
        (200, Some(enterprises)),
        &[400],
        false,
    );
    let enterprise = b.wrapped::<EnterpriseView>("enterprise");
    b.op(
        "get",
        "/api/enterprises/{id}",
        "one enterprise",
        vec![path_param("id", "registry id")],
        None,
        (200, Some(enterprise)),
        &[404],
        false,
    );
    let readings = vec![
        path_param("mn", "the point (MN or device id)"),
        required_query(
            "metric",
            json!({ "type": "string", "minLength": 1, "maxLength": 64 }),
            "the metric code",
        ),
        required_query("from", time(), "start (inclusive)"),
        required_query("to", time(), "end (exclusive), at most 400 days after from"),
    ];
    b.op(
        "get",
        "/api/points/{mn}/readings",
        "a point's readings of one metric: each up to 12 hours, hourly beyond",
        readings,
        None,
        (200, Some(series)),
        &[400, 404],
        false,
    );

    let schemas = b.generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Argus",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The supervision center's API: alerts, tickets and their legal record, the registry and readings, scoped to the caller's jurisdiction. Errors are `error: ...` text lines."
        },
        "paths": b.paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": { "type": "http", "scheme": "bearer", "description": "an API token (`argus user token`, `POST /api/tokens`)" },
                "session": { "type": "apiKey", "in": "cookie", "name": "argus_session", "description": "the session of `POST /api/login`" }
            }
        },
        "security": [{ "token": [] }, { "session": [] }]
    })
}
