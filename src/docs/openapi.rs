//! The OpenAPI 3.1 document, built with utoipa from the catalog: one operation per action.

use serde_json::{Value, json};
use utoipa::openapi::extensions::{Extensions, ExtensionsBuilder};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, Deprecated, InfoBuilder, LicenseBuilder, OpenApi,
    OpenApiBuilder, Paths, Ref, RefOr, Required, ResponseBuilder, ResponsesBuilder,
};

use crate::catalog::{Action, CATALOG, ParamKind};

use super::schema::{self, Refs};
use super::{example_request, param_description};

const BEARER: &str = "bearerAuth";
/// The component of free-form Crisp query parameters, shared by the reads.
const QUERY: &str = "Query";
const JSON: &str = "application/json";

/// The statuses the gateway answers with an error envelope, and when.
const ERRORS: [(&str, &str); 11] = [
    (
        "400",
        "The body is not a JSON object of the action's fields, or a field is wrong (the message names it).",
    ),
    ("401", "Missing or invalid API key."),
    (
        "403",
        "The key's scope does not allow this action or `websiteID` (`website_not_allowed`: outside the account's or the key's websites), or Crisp forbade it for the account.",
    ),
    (
        "404",
        "Unknown action or account, or Crisp reported the resource missing.",
    ),
    ("409", "Crisp reported a conflict."),
    (
        "413",
        "The request body is larger than the gateway's limit.",
    ),
    (
        "429",
        "Rate-limited (by the gateway or by Crisp); see Retry-After.",
    ),
    (
        "502",
        "Crisp failed, refused the account's credentials, answered garbage, or answered more than the gateway reads (`crisp_response_too_large`: page with a smaller `per_page`).",
    ),
    (
        "503",
        "The gateway's database is unavailable; retry shortly.",
    ),
    ("504", "The call took longer than the gateway's deadline."),
    ("default", "Any other error, in the same envelope."),
];

/// The endpoints that are not catalog actions: (path, summary, response schema, content type).
const GATEWAY_ENDPOINTS: [(&str, &str, &str); 7] = [
    (
        "/api/crisp/_endpoints",
        "List every action with its parameters",
        "Endpoints",
    ),
    ("/healthz", "Liveness: the process answers", "Health"),
    ("/readyz", "Readiness: the database answers", "Health"),
    ("/openapi.json", "This OpenAPI document", "Document"),
    ("/postman.json", "The Postman v2.1 collection", "Document"),
    (
        "/llms.txt",
        "The gateway explained for agents (Markdown)",
        "Text",
    ),
    (
        "/metrics",
        "Prometheus metrics (text exposition format)",
        "Text",
    ),
];

pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_live_…")
                    .description(Some(
                        "A workspace key made by `crisp-gateway key create`, sent as `Authorization: Bearer sk_live_…`.",
                    ))
                    .build(),
            ),
        )
        .schema(
            "ExistsEnvelope",
            envelope(Ref::from_schema_name("Exists").into()),
        )
        .schema(
            "Exists",
            ObjectBuilder::new()
                .property("exists", typed(Type::Boolean, "Whether Crisp has it."))
                .required("exists")
                .description(Some("A Crisp HEAD call answers with existence only.")),
        )
        .schema(
            "AccountsEnvelope",
            envelope(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("Account"))
                    .into(),
            ),
        )
        .schema("Account", account_schema())
        .schema("ErrorDetail", error_detail())
        .schema("EndpointSummary", endpoint_summary())
        .schema("Report", report_result())
        .schema("ErrorEnvelope", error_envelope())
        .schema(
            QUERY,
            ObjectBuilder::new()
                .additional_properties(Some(any(
                    "A value; arrays and objects are sent JSON-encoded.",
                )))
                .description(Some("Crisp query parameters by name, such as `{\"per_page\":20}`.")),
        )
        .schema("Endpoints", endpoints_schema())
        .schema(
            "Health",
            ObjectBuilder::new()
                .property("ok", typed(Type::Boolean, "Always true."))
                .required("ok"),
        )
        .schema(
            "Document",
            ObjectBuilder::new().description(Some("A JSON document.")),
        );

    // The error answers are shared by every action, so they are written once as components.
    for (status, why) in ERRORS {
        components = components.response(error_name(status), error_response(why));
    }
    for action in CATALOG.actions() {
        let request = request_name(action);
        components = components.schema(&request, request_schema(action));
        paths.add_path_operation(
            format!("/api/crisp/{}", action.slug),
            vec![HttpMethod::Post],
            operation(action, &request),
        );
    }
    for (path, summary, schema) in GATEWAY_ENDPOINTS {
        let content = if schema == "Text" {
            ContentBuilder::new()
                .schema(Some(typed(Type::String, "Markdown text.")))
                .build()
        } else {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build()
        };
        let media = if schema == "Text" { "text/plain" } else { JSON };
        let mut responses = ResponsesBuilder::new().response(
            "200",
            ResponseBuilder::new()
                .description("OK")
                .content(media, content),
        );
        if path == "/readyz" {
            responses = responses.response("503", error_response(ERRORS[8].1));
        }
        paths.add_path_operation(
            path,
            vec![HttpMethod::Get],
            OperationBuilder::new()
                .tag("gateway")
                .summary(Some(summary))
                .operation_id(Some(operation_id(path)))
                .securities(Some(Vec::<SecurityRequirement>::new()))
                .responses(responses)
                .build(),
        );
    }

    paths.add_path_operation(
        "/api/crisp/report",
        vec![HttpMethod::Post],
        report_operation(),
    );
    components = components.schema("ReportRequest", report_request()).schema(
        "ReportResponse",
        envelope(Ref::from_schema_name("Report").into()),
    );

    let mut domains: Vec<&str> = CATALOG.actions().iter().map(|a| a.domain).collect();
    domains.sort_unstable();
    domains.dedup();
    let tags = domains
        .into_iter()
        .chain(
            std::iter::once("gateway")
                .filter(|_| !CATALOG.actions().iter().any(|a| a.domain == "gateway")),
        )
        .map(|d| {
            let count = CATALOG.actions().iter().filter(|a| a.domain == d).count();
            TagBuilder::new()
                .name(d)
                .description(Some(if d == "gateway" {
                    format!("The gateway's own endpoints and {count} action(s) it answers itself.")
                } else {
                    format!("Crisp {d}: {count} actions.")
                }))
                .build()
        });

    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("crisp-gateway")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .license(Some(
                    LicenseBuilder::new()
                        .name("MIT")
                        .identifier(Some("MIT"))
                        .build(),
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .security(Some([SecurityRequirement::new(
            BEARER,
            Vec::<String>::new(),
        )]))
        .tags(Some(tags))
        .build()
}

const DESCRIPTION: &str = "The whole Crisp REST API v1 behind one workspace key. Every action is \
`POST /api/crisp/<action>` with a JSON object of its fields; the answer is \
`{\"ok\":true,\"tool\":…,\"result\":…}` or `{\"ok\":false,\"tool\":…,\"error\":{status,reason,message,request_id}}`. \
Authenticate with `Authorization: Bearer sk_live_…`. `websiteID` defaults to the chosen account's \
website and `pageNumber` to 1; writes take the Crisp payload in `body`, reads take Crisp query \
parameters in `query`. See also /llms.txt and /postman.json.";

/// The document as JSON, with a stable key order.
pub fn json() -> Value {
    let mut value = serde_json::to_value(document()).unwrap_or(Value::Null);
    splice_types(&mut value);
    stable_extensions(&mut value);
    value
}

/// utoipa keeps `x-` extensions in a `HashMap`, whose order changes from run to run; the
/// committed document must not, so they are sorted.
fn stable_extensions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mut extensions: Vec<(String, Value)> = Vec::new();
            let keys: Vec<String> = map
                .keys()
                .filter(|k| k.starts_with("x-"))
                .cloned()
                .collect();
            for key in keys {
                if let Some(v) = map.shift_remove(&key) {
                    extensions.push((key, v));
                }
            }
            extensions.sort_by(|a, b| a.0.cmp(&b.0));
            map.extend(extensions);
            map.values_mut().for_each(stable_extensions);
        }
        Value::Array(items) => items.iter_mut().for_each(stable_extensions),
        _ => {}
    }
}

/// `POST /api/crisp/report`: a caller reports an action that failed or surprised it.
fn report_result() -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some("A stored report."))
        .property("report_id", typed(Type::String, "The stored report's id."))
        .property("received", typed(Type::Boolean, "Always true."))
        .required("report_id")
        .required("received")
        .into()
}

fn report_operation() -> utoipa::openapi::path::Operation {
    let mut responses = ResponsesBuilder::new().response(
        "200",
        ResponseBuilder::new()
            .description("Stored; operators read it with `crisp-gateway report list`.")
            .content(
                JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ReportResponse")))
                    .build(),
            ),
    );
    for (status, why) in [
        (
            "400",
            "The report is not `{message, context?, conversation?}` (the message says what is wrong).",
        ),
        ("401", ERRORS[1].1),
        ("413", ERRORS[5].1),
        ("429", ERRORS[6].1),
        ("503", ERRORS[8].1),
    ] {
        responses = responses.response(status, error_response(why));
    }
    OperationBuilder::new()
        .tag("gateway")
        .summary(Some("Report an action that failed, returned nothing, or surprised you"))
        .description(Some(
            "Stored with the key and workspace for the gateway's operators; nothing is sent to Crisp.",
        ))
        .operation_id(Some("crisp_report"))
        .request_body(Some(
            utoipa::openapi::request_body::RequestBodyBuilder::new()
                .required(Some(utoipa::openapi::Required::True))
                .content(JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("ReportRequest"))).build())
                .build(),
        ))
        .responses(responses)
        .build()
}

fn report_request() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property(
            "message",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(10_000))
                .description(Some(
                    "What went wrong: the action, what you sent, what you expected.",
                )),
        )
        .property(
            "context",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(10_000))
                .description(Some("Optional: what you were doing.")),
        )
        .property(
            "conversation",
            utoipa::openapi::schema::ArrayBuilder::new()
                .items(any("A message of the conversation that led here."))
                .max_items(Some(200))
                .description(Some("Optional: the relevant part of the conversation.")),
        )
        .required("message")
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ))
        .into()
}

fn operation_id(path: &str) -> String {
    let words: Vec<&str> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && *w != "api" && *w != "crisp")
        .collect();
    format!("gateway_{}", words.join("_"))
}

/// `list/conversations` → `ListConversationsRequest`.
fn request_name(action: &Action) -> String {
    let mut name: String = action
        .slug
        .split('/')
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    name.push_str("Request");
    name
}

fn operation(action: &Action, request: &str) -> Operation {
    let mut description = match &action.route {
        Some(route) => format!(
            "Calls Crisp `{} {}`.",
            route.method.as_str(),
            route.path.as_str()
        ),
        None => "Answered by the gateway itself.".to_owned(),
    };
    if let Some(notes) = action.notes {
        description.push_str(&format!(" Notes: {notes}."));
    }
    if !action.tiers.is_empty() {
        let tiers: Vec<&str> = action.tiers.iter().map(|t| t.as_str()).collect();
        description.push_str(&format!(
            " Crisp accepts only {} tokens for it; an account of another tier is refused with 403 `tier_not_allowed`.",
            tiers.join(" or ")
        ));
    }
    if action.legacy {
        description.insert_str(0, LEGACY);
    }
    let success = if action.is_head() {
        "ExistsEnvelope".to_owned()
    } else if action.route.is_none() {
        "AccountsEnvelope".to_owned()
    } else {
        response_name(action)
    };
    let mut responses = ResponsesBuilder::new().response(
        "200",
        ResponseBuilder::new()
            .description("The action's result in the success envelope.")
            .content(
                JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(success)))
                    .build(),
            ),
    );
    for (status, _) in ERRORS {
        responses = responses.response(status, Ref::from_response_name(error_name(status)));
    }
    let mut extensions = ExtensionsBuilder::new().add("x-write", action.write);
    if let Some(route) = &action.route {
        extensions = extensions
            .add("x-crisp-method", route.method.as_str())
            .add("x-crisp-path", route.path.as_str());
    }
    if !action.tiers.is_empty() {
        let tiers: Vec<&str> = action.tiers.iter().map(|t| t.as_str()).collect();
        extensions = extensions.add("x-crisp-tiers", tiers);
    }
    OperationBuilder::new()
        .deprecated(action.legacy.then_some(Deprecated::True))
        .tag(action.domain)
        .summary(Some(action.title))
        .description(Some(description))
        .operation_id(Some(action.tool.as_str()))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(request)))
                        .example(Some(example_request(action)))
                        .build(),
                )
                .build(),
        ))
        .responses(responses)
        .extensions(Some(Extensions::from(extensions)))
        .build()
}

/// How a legacy action's description starts.
const LEGACY: &str = "Legacy: for websites not yet moved to Crisp's new Knowledge Base (the \
`helpdesk/locale/…` routes that Crisp's current clients no longer send); websites on the new \
Knowledge Base use the `helpdesk/tree/…` and `helpdesk/page/…` actions. ";

/// `list/conversations` → `ListConversationsResponse`: the action's success envelope, with its
/// result typed where the catalog knows the type.
fn response_name(action: &Action) -> String {
    let request = request_name(action);
    format!("{}Response", request.trim_end_matches("Request"))
}

/// utoipa models the schemas it builds, but cannot read back one it does not (`{}`, any value),
/// so the schemas derived from the catalog's types are written into the serialized document:
/// every named type as a component, each action's `body` and `query`, and the success envelope
/// of each action whose result type is known.
fn splice_types(doc: &mut Value) {
    let types = CATALOG.types();
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    schemas.insert(schema::JSON_OBJECT.into(), schema::json_object());
    for named in types.all() {
        schemas.insert(
            named.name.into(),
            schema::named(types, named, Refs::Components),
        );
    }
    for action in CATALOG.actions() {
        if let Some(properties) = schemas
            .get_mut(&request_name(action))
            .and_then(|r| r.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            for (name, typed) in [
                ("body", body_schema(action)),
                ("query", query_schema(action)),
            ] {
                if let Some(property) = properties.get_mut(name) {
                    let description = property["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    *property = schema::described(typed, &description);
                }
            }
        }
        if action.route.is_some() && !action.is_head() {
            let result = match &action.result {
                Some(result) => schema::ty(types, result, Refs::Components),
                None => json!({
                    "description": "Crisp's `data`, as Crisp sent it (the catalog does not type this result yet).",
                }),
            };
            schemas.insert(
                response_name(action),
                json!({
                    "type": "object",
                    "description": format!("The answer of `{}`: Crisp's `data` in `result`.", action.slug),
                    "properties": {
                        "ok": { "type": "boolean", "description": "Always true on success." },
                        "tool": { "type": "string", "description": format!("`{}`.", action.tool) },
                        "result": result,
                    },
                    "required": ["ok", "tool", "result"],
                }),
            );
        }
    }
}

/// The typed Crisp body; a free-form object where the catalog knows none (a write that sends
/// no body still takes one, and passes it on).
fn body_schema(action: &Action) -> Value {
    match &action.body {
        Some(ty) => schema::ty(CATALOG.types(), ty, Refs::Components),
        None => schema::ty(
            CATALOG.types(),
            &crate::catalog::Ty::Object,
            Refs::Components,
        ),
    }
}

/// The known query parameters, or the shared free-form `Query`.
fn query_schema(action: &Action) -> Value {
    match &action.query {
        Some(ty) => schema::ty(CATALOG.types(), ty, Refs::Components),
        None => json!({ "$ref": format!("#/components/schemas/{QUERY}") }),
    }
}

/// `404` → `Error404`, `default` → `ErrorDefault`.
fn error_name(status: &str) -> String {
    let mut chars = status.chars();
    let first = chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string())
        .unwrap_or_default();
    format!("Error{first}{}", chars.as_str())
}

fn error_response(why: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(why)
        .content(
            JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build()
}

fn typed(t: Type, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(t))
        .description(Some(description))
        .into()
}

fn any(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(description))
        .into()
}

fn envelope(result: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("ok", typed(Type::Boolean, "Always true on success."))
        .property(
            "tool",
            typed(
                Type::String,
                "The action's tool id (`crisp_list_conversations`).",
            ),
        )
        .property("result", result)
        .required("ok")
        .required("tool")
        .required("result")
        .into()
}

fn error_envelope() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("ok", typed(Type::Boolean, "Always false on error."))
        .property(
            "tool",
            ObjectBuilder::new()
                .schema_type(
                    [Type::String, Type::Null]
                        .into_iter()
                        .collect::<SchemaType>(),
                )
                .description(Some("The action's tool id; null outside actions.")),
        )
        .property("error", Ref::from_schema_name("ErrorDetail"))
        .required("ok")
        .required("tool")
        .required("error")
        .into()
}

fn error_detail() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("status", typed(Type::Integer, "The HTTP status, repeated."))
        .property(
            "reason",
            typed(
                Type::String,
                "A stable machine-readable reason (`unknown_field`, `unauthorized`, …).",
            ),
        )
        .property(
            "message",
            typed(Type::String, "What went wrong and what to do, for people."),
        )
        .property(
            "request_id",
            typed(
                Type::String,
                "The `x-request-id` of the call; quote it when reporting a problem.",
            ),
        )
        .required("status")
        .required("reason")
        .required("message")
        .required("request_id")
        .description(Some("What went wrong."))
        .into()
}

fn account_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property(
            "id",
            typed(Type::String, "The account id, usable as `account`."),
        )
        .property(
            "label",
            typed(Type::String, "The account label, usable as `account`."),
        )
        .property("website_id", typed(Type::String, "The Crisp website id."))
        .property(
            "tier",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["website", "plugin", "user"])),
        )
        .property(
            "default",
            typed(Type::Boolean, "Used when `account` is omitted."),
        )
        .property(
            "websites",
            ArrayBuilder::new().items(typed(
                Type::String,
                "A Crisp website id calls may name in `websiteID` (its own first); any other is refused with 403 `website_not_allowed`.",
            )),
        )
        .required("id")
        .required("label")
        .required("website_id")
        .required("tier")
        .required("default")
        .required("websites")
        .into()
}

fn endpoint_summary() -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some("One action."))
        .property("name", typed(Type::String, "The action slug."))
        .property("tool", typed(Type::String, "The tool id."))
        .property("endpoint", typed(Type::String, "`POST /api/crisp/<slug>`."))
        .required("name")
        .required("tool")
        .required("endpoint")
        .into()
}

fn endpoints_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("count", typed(Type::Integer, "How many actions."))
        .property(
            "actions",
            ArrayBuilder::new().items(Ref::from_schema_name("EndpointSummary")),
        )
        .required("count")
        .required("actions")
        .into()
}

/// Any text that stays one non-blank path segment other than `.` and `..` (what
/// `call::args` accepts): a character that is neither a dot nor blank, or dots mixed with
/// something else.
const SEGMENT_PATTERN: &str = r"[^.\s]|\..*\..*\.|\s.*\.|\..*\s";

fn request_schema(action: &Action) -> RefOr<Schema> {
    let reshaping = if action.write {
        " The gateway also takes `dry_run: true`, which answers the Crisp request that would be sent instead of sending it."
    } else if action.is_head() {
        ""
    } else {
        " The gateway also takes `fields` (dotted paths of each result item to keep), which answers a subset of the result's fields."
    };
    let mut object = ObjectBuilder::new()
        .description(Some(format!("The fields of `{}`.{reshaping}", action.slug)))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    // `dry_run` and `fields` change the answer's shape away from the typed result; they are
    // described above rather than typed here, so a generated client's result type stays true.
    for param in action
        .params
        .iter()
        .filter(|p| !(p.kind == ParamKind::Option && p.name != "pages"))
    {
        let description = param_description(action, param.kind, param.name);
        let schema: RefOr<Schema> = match (param.kind, param.name) {
            (ParamKind::Option, name) => serde_json::from_value(super::options::schema(name))
                .unwrap_or_else(|_| any(&description)),
            (ParamKind::Account, _) => typed(Type::String, &description),
            // A plain integer: generators type it as `number`. The gateway also takes its
            // decimal text, which the description says. No `default` keyword: openapi-typescript
            // makes every defaulted property required in its default mode.
            (ParamKind::Path, "pageNumber") => ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(u32::MAX))
                .description(Some(description))
                .into(),
            (ParamKind::Path, _) => ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(SEGMENT_PATTERN))
                .description(Some(description))
                .into(),
            // One shape per field, so generators write one clean type: the body is its typed
            // object and the query its object; the text forms the gateway also accepts are
            // described, not typed.
            // Stand-ins: the typed schemas are spliced into the serialized document (see
            // `splice_types`).
            (ParamKind::Body | ParamKind::Query, _) => any(&description),
        };
        object = object.property(param.name, schema);
        if param.required {
            object = object.required(param.name);
        }
    }
    object.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_operation_per_action_with_its_tool_id() {
        let doc = json();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for action in CATALOG.actions() {
            let op = &paths[&format!("/api/crisp/{}", action.slug)]["post"];
            assert_eq!(op["operationId"], action.tool.as_str(), "{}", action.slug);
            assert_eq!(op["tags"][0], action.domain);
            assert_eq!(op["x-write"], action.write);
        }
        // Plus `POST /api/crisp/report`.
        assert_eq!(
            paths.len(),
            CATALOG.actions().len() + GATEWAY_ENDPOINTS.len() + 1
        );
        assert_eq!(
            paths["/api/crisp/report"]["post"]["operationId"],
            "crisp_report"
        );
        let send = &paths["/api/crisp/send/message/in/conversation"]["post"];
        assert_eq!(send["x-crisp-method"], "POST");
        assert_eq!(
            send["x-crisp-path"],
            "/website/{websiteID}/conversation/{sessionID}/message"
        );
    }

    #[test]
    fn request_schemas_list_the_real_fields() {
        let doc = json();
        let schemas = &doc["components"]["schemas"];
        let send = &schemas["SendMessageInConversationRequest"];
        assert_eq!(send["additionalProperties"], false);
        let fields: Vec<&str> = send["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["account", "websiteID", "sessionID", "body"]);
        assert_eq!(
            send["required"],
            json!(["sessionID", "body"]),
            "a body with required fields is required"
        );
        // The body is the catalog's named type, a component generators name after it.
        assert_eq!(
            send["properties"]["body"]["$ref"],
            "#/components/schemas/MessageNew"
        );
        let body_fields = &schemas["MessageNew"]["properties"];
        for name in ["type", "from", "origin", "content"] {
            assert!(body_fields.get(name).is_some(), "{name} in {body_fields}");
        }
        let resolve = |reference: &Value| {
            &schemas[reference
                .as_str()
                .expect("ref")
                .rsplit('/')
                .next()
                .expect("name")]
        };
        let body =
            resolve(&schemas["ChangeConversationStateRequest"]["properties"]["body"]["$ref"]);
        let state = resolve(&body["properties"]["state"]["$ref"]);
        assert_eq!(state["enum"], json!(["pending", "unresolved", "resolved"]));
        let list = &schemas["ListConversationsRequest"]["properties"];
        assert!(list.get("query").is_some() && list.get("pageNumber").is_some());
        // openapi-typescript makes a property with a `default` required in its default mode.
        for action in CATALOG.actions() {
            let properties = &schemas[request_name(action)]["properties"];
            for (name, property) in properties.as_object().expect("properties") {
                assert!(property.get("default").is_none(), "{} {name}", action.slug);
            }
        }
        assert_eq!(list["pageNumber"]["type"], "integer");
    }

    #[test]
    fn results_are_typed_envelopes_and_legacy_actions_deprecated() {
        let doc = json();
        let schemas = &doc["components"]["schemas"];
        let paths = &doc["paths"];
        let create = &paths["/api/crisp/create/new/conversation"]["post"];
        assert_eq!(
            create["responses"]["200"]["content"][JSON]["schema"]["$ref"],
            "#/components/schemas/CreateNewConversationResponse"
        );
        let envelope = &schemas["CreateNewConversationResponse"];
        assert_eq!(envelope["required"], json!(["ok", "tool", "result"]));
        let result = envelope["properties"]["result"]["$ref"]
            .as_str()
            .expect("ref");
        let result = &schemas[result.rsplit('/').next().expect("name")];
        // Optional, so it may also be null (how Crisp leaves a field unset).
        assert_eq!(
            result["properties"]["session_id"]["type"],
            json!(["string", "null"])
        );
        let mut typed = 0;
        for action in CATALOG.actions() {
            let op = &paths[&format!("/api/crisp/{}", action.slug)]["post"];
            assert_eq!(op["deprecated"] == true, action.legacy, "{}", action.slug);
            if action.legacy {
                assert!(
                    op["description"]
                        .as_str()
                        .expect("text")
                        .contains("new Knowledge Base")
                );
            }
            if action.result.is_some() {
                typed += 1;
                assert!(
                    schemas.get(response_name(action)).is_some(),
                    "{}",
                    action.slug
                );
            }
        }
        assert!(typed >= 80, "{typed} typed results");
    }

    /// Every `$ref` names a component, and the gateway's own components do not shadow a
    /// catalog type.
    #[test]
    fn references_resolve_and_names_are_unique() {
        let doc = json();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').expect("end")];
            assert!(schemas.contains_key(name), "dangling reference to {name}");
        }
        let before = serde_json::to_value(document()).expect("document");
        for named in CATALOG.types().all() {
            assert!(
                before["components"]["schemas"].get(named.name).is_none(),
                "the catalog type {} clashes with a gateway component",
                named.name
            );
        }
    }

    #[test]
    fn output_is_stable() {
        assert_eq!(json().to_string(), json().to_string());
    }
}
