//! What the converter needs to know of the REST contract (openapi/personvisitering-v1.json):
//! per operationId, its method, path, parameters, and the fields of its request body and of
//! its success answer. Read once at start.

use std::collections::HashMap;

use serde_json::Value;

/// A JSON field or a parameter: its type, format and whether it is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldType {
    /// "string", "integer", "object", "array", ...
    pub ty: String,
    pub format: Option<String>,
    pub nullable: bool,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// "path", "header" or "query".
    pub place: String,
    pub required: bool,
    pub ty: FieldType,
}

#[derive(Debug, Clone)]
pub struct RestOperation {
    pub id: String,
    pub method: http::Method,
    /// The path template, e.g. `/personvisitering/v1/kontaktgrupper/{id}`.
    pub path: String,
    pub params: Vec<Param>,
    /// The request body's schema (resolved), if the operation takes one.
    pub body: Option<Value>,
    /// The schema (resolved) of the first 2xx answer's JSON body, if any.
    pub answer: Option<Value>,
}

pub struct Contract {
    doc: Value,
    pub operations: HashMap<String, RestOperation>,
}

fn field_type(schema: &Value) -> FieldType {
    // `type` is a string or, in OpenAPI 3.1, an array such as ["string", "null"].
    let (ty, nullable) = match &schema["type"] {
        Value::String(s) => (s.clone(), false),
        Value::Array(a) => {
            let nullable = a.iter().any(|t| t == "null");
            let ty = a
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null");
            (ty.to_owned(), nullable)
        }
        _ if schema.get("$ref").is_some() || schema.get("properties").is_some() => {
            ("object".into(), false)
        }
        _ => ("any".into(), false),
    };
    FieldType {
        ty,
        format: schema["format"].as_str().map(str::to_owned),
        nullable,
    }
}

impl Contract {
    pub fn parse(text: &str) -> Result<Contract, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut operations = HashMap::new();
        let paths = doc["paths"].as_object().ok_or("no paths")?;
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let Ok(method) = method.to_uppercase().parse::<http::Method>() else {
                    continue;
                };
                let Some(id) = op["operationId"].as_str() else {
                    continue;
                };
                let params = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| Param {
                        name: p["name"].as_str().unwrap_or_default().to_owned(),
                        place: p["in"].as_str().unwrap_or_default().to_owned(),
                        required: p["required"].as_bool().unwrap_or(false),
                        ty: field_type(&p["schema"]),
                    })
                    .collect();
                let body = op["requestBody"]["content"]["application/json"]["schema"].clone();
                let answer = op["responses"]
                    .as_object()
                    .and_then(|r| r.iter().find(|(status, _)| status.starts_with('2')))
                    .map(|(_, r)| r["content"]["application/json"]["schema"].clone())
                    .filter(|s| !s.is_null());
                operations.insert(
                    id.to_owned(),
                    RestOperation {
                        id: id.to_owned(),
                        method,
                        path: path.clone(),
                        params,
                        body: (!body.is_null()).then_some(body),
                        answer,
                    },
                );
            }
        }
        Ok(Contract { doc, operations })
    }

    /// Follows `$ref`s (and a `oneOf` with null) to the schema that has the properties.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..16 {
            if let Some(r) = schema["$ref"].as_str() {
                let name = r.rsplit('/').next().unwrap_or_default();
                schema = &self.doc["components"]["schemas"][name];
            } else if let Some(one) = schema["oneOf"].as_array() {
                match one.iter().find(|s| s["type"] != "null") {
                    Some(s) => schema = s,
                    None => return schema,
                }
            } else {
                return schema;
            }
        }
        schema
    }

    /// The type of the field at a dot path below `schema`, and whether the field is
    /// required at every level.
    pub fn field(&self, schema: &Value, path: &str) -> Option<(FieldType, bool)> {
        let segs: Vec<&str> = path.split('.').collect();
        let mut s = self.resolve(schema);
        let mut required = true;
        for (i, seg) in segs.iter().enumerate() {
            required &= s["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|n| n == seg));
            let prop = s["properties"].get(*seg)?;
            if i + 1 == segs.len() {
                let mut ft = field_type(prop);
                if prop.get("$ref").is_some() || prop.get("oneOf").is_some() {
                    let inner = field_type(self.resolve(prop));
                    let null_in_one_of = prop["oneOf"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["type"] == "null"));
                    ft = FieldType {
                        nullable: inner.nullable || null_in_one_of,
                        ..inner
                    };
                }
                return Some((ft, required));
            }
            s = self.resolve(prop);
        }
        None
    }

    /// The (resolved) item schema of the array field `field` of `schema`.
    pub fn array_items<'a>(&'a self, schema: &'a Value, field: &str) -> Option<&'a Value> {
        let prop = self.resolve(schema)["properties"].get(field)?;
        let prop = self.resolve(prop);
        (field_type(prop).ty == "array").then(|| self.resolve(&prop["items"]))
    }

    /// Required properties of a (resolved) object schema.
    pub fn required(&self, schema: &Value) -> Vec<String> {
        self.resolve(schema)["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }
}
