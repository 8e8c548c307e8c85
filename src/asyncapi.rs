//! The AsyncAPI 3.0 document of the modules' events: a channel per module
//! that records events, a message per event type, each a CloudEvent whose
//! `data` schema comes from the same Rust type as the OpenAPI document's,
//! and what each module sends and follows.

use serde_json::{Map, Value, json};

use app_kernel::event::{CloudEvent, EventType, Schemas};

use crate::modules::Module;

/// The content type of every message.
pub const CONTENT_TYPE: &str = app_kernel::broker::CONTENT_TYPE;

/// The document of `modules`: their channels, and those of the modules
/// whose events they follow.
pub fn asyncapi(modules: &[&'static Module]) -> Value {
    let mut schemas: Schemas = Vec::new();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut schema_of_event = Map::new();
    app_kernel::event::resource::<CloudEvent>(&mut schemas);
    let followed = modules
        .iter()
        .flat_map(|m| m.follows.iter())
        .filter_map(|kind| producer_of(kind));
    let mut producers: Vec<&'static Module> = modules.to_vec();
    for producer in followed {
        if !producers.contains(&producer) {
            producers.push(producer);
        }
    }
    for producer in &producers {
        let mut channel_messages = Map::new();
        for event in producer.events {
            channel_messages.insert(
                event.kind.to_owned(),
                json!({"$ref": format!("#/components/messages/{}", event.kind)}),
            );
            messages.insert(event.kind.to_owned(), message(event));
            schema_of_event.insert(event.kind.to_owned(), payload(event, &mut schemas));
        }
        channels.insert(
            producer.name.to_owned(),
            json!({
                "address": format!("{}.events", producer.name),
                "title": format!("Events of the {} module", producer.name),
                "description": format!(
                    "Every change to the {name} module's data, in the order the changes \
                     committed (`seq`). With `--broker`, published to RabbitMQ's topic \
                     exchange `{name}.events`, routed by type; read over HTTP from \
                     `{path}/events?after=SEQ` in any case.",
                    name = producer.name,
                    path = producer.path(),
                ),
                "servers": [{"$ref": "#/servers/broker"}],
                "messages": channel_messages,
                "bindings": {"amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": app_kernel::broker::Broker::exchange(producer.name),
                        "type": "topic",
                        "durable": true,
                        "autoDelete": false,
                        "vhost": "/",
                    },
                    "bindingVersion": "0.3.0",
                }},
            }),
        );
    }
    for module in modules {
        if !module.events.is_empty() {
            operations.insert(
                format!("{}.send", module.name),
                json!({
                    "action": "send",
                    "title": format!("The {} module records its changes", module.name),
                    "channel": {"$ref": format!("#/channels/{}", module.name)},
                    "messages": module.events.iter().map(|e| json!({
                        "$ref": format!("#/channels/{}/messages/{}", module.name, e.kind)
                    })).collect::<Vec<_>>(),
                    "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}},
                }),
            );
        }
        for producer in &producers {
            let kinds: Vec<&str> = producer
                .events
                .iter()
                .map(|e| e.kind)
                .filter(|kind| module.follows.contains(kind))
                .collect();
            if kinds.is_empty() {
                continue;
            }
            operations.insert(
                format!("{}.follow.{}", module.name, producer.name),
                json!({
                    "action": "receive",
                    "title": format!("The {} module follows the {} module", module.name, producer.name),
                    "description": format!(
                        "With `--broker`, from the durable queue `{}.{}.events`, bound to \
                         these types and shared by the module's replicas; acknowledged once \
                         applied.",
                        module.name, producer.name
                    ),
                    "channel": {"$ref": format!("#/channels/{}", producer.name)},
                    "bindings": {"amqp": {"ack": true, "cc": kinds, "bindingVersion": "0.3.0"}},
                    "messages": kinds.iter().map(|kind| json!({
                        "$ref": format!("#/channels/{}/messages/{kind}", producer.name)
                    })).collect::<Vec<_>>(),
                }),
            );
        }
    }
    let mut components = Map::new();
    for (name, schema) in schemas {
        components.insert(
            name,
            serde_json::to_value(schema).expect("a schema is JSON"),
        );
    }
    components.extend(schema_of_event);
    let names: Vec<&str> = modules.iter().map(|m| m.name).collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": format!("app events: {}", names.join(", ")),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Each module records every change to its data as a CloudEvent \
                            (structured, in JSON), in the transaction of the change.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "broker": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The RabbitMQ that `--broker` (`APP_BROKER_URL`) names.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": components,
        },
    })
}

/// The module that records events of `kind`.
fn producer_of(kind: &str) -> Option<&'static Module> {
    crate::modules::ALL
        .iter()
        .copied()
        .find(|m| m.events.iter().any(|e| e.kind == kind))
}

fn message(event: &EventType) -> Value {
    let mut message = json!({
        "name": event.kind,
        "title": event.kind,
        "summary": event.summary,
        "contentType": CONTENT_TYPE,
        "payload": {"$ref": format!("#/components/schemas/{}", event.kind)},
        "bindings": {"amqp": {"messageType": event.kind, "bindingVersion": "0.3.0"}},
    });
    // AsyncAPI 3.0 has no `deprecated` for messages: an extension says it.
    if event.deprecated {
        message["x-deprecated"] = json!(true);
    }
    message
}

/// A CloudEvent of this type: the envelope, its `type`, and its `data`,
/// whose schema is that of the type its producer's contract declares.
fn payload(event: &EventType, schemas: &mut Schemas) -> Value {
    let data = json!({"$ref": format!("#/components/schemas/{}", (event.data)(schemas))});
    json!({
        "allOf": [
            {"$ref": "#/components/schemas/CloudEvent"},
            {
                "type": "object",
                "properties": {
                    "type": {"const": event.kind},
                    "data": data,
                },
            },
        ],
    })
}
