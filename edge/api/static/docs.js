// The offline API reference: renders /openapi.json with DOM nodes (text only, no markup
// from the schema is ever interpreted), so /docs works on an appliance with no network.

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function refName(ref) {
  return ref.split("/").pop();
}

// A short type description of a JSON schema: "string", "integer | null", "Frame[]", ...
function typeOf(schema) {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema.$ref);
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (schema[key]) return schema[key].map(typeOf).join(key === "allOf" ? " & " : " | ");
  }
  if (schema.type === "array") return `${typeOf(schema.items)}[]`;
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.type === "object" && schema.additionalProperties) {
    return `{string: ${typeOf(schema.additionalProperties)}}`;
  }
  let type = schema.type || "any";
  if (schema.format) type += ` (${schema.format})`;
  return type;
}

function limits(schema) {
  if (!schema) return "";
  const parts = [];
  for (const [key, label] of [["minimum", ">="], ["maximum", "<="], ["exclusiveMinimum", ">"],
    ["exclusiveMaximum", "<"], ["minLength", "length >="], ["maxLength", "length <="]]) {
    if (schema[key] !== undefined) parts.push(`${label} ${schema[key]}`);
  }
  if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
  return parts.join(", ");
}

function parameters(op) {
  const params = op.parameters || [];
  if (!params.length) return null;
  const body = el("tbody");
  for (const p of params) {
    body.append(el("tr", {},
      el("td", {}, el("code", {}, p.name)),
      el("td", {}, p.in),
      el("td", {}, p.required ? "required" : "optional"),
      el("td", { class: "type" }, typeOf(p.schema)),
      el("td", {}, [p.description || p.schema?.description || "", limits(p.schema)]
        .filter(Boolean).join("; "))));
  }
  return el("table", {},
    el("thead", {}, el("tr", {}, ...["parameter", "in", "", "type", "notes"].map((h) => el("th", {}, h)))),
    body);
}

function requestBody(op) {
  const content = op.requestBody?.content;
  if (!content) return null;
  const lines = Object.entries(content).map(([media, spec]) => `${media}: ${typeOf(spec.schema)}`);
  return el("p", {}, "Body: ", el("code", {}, lines.join("; ")));
}

function responses(op) {
  const entries = Object.entries(op.responses || {});
  if (!entries.length) return null;
  const items = entries.map(([code, spec]) => {
    const media = Object.entries(spec.content || {})
      .map(([type, body]) => `${type}${body.schema ? ` ${typeOf(body.schema)}` : ""}`);
    return el("li", {}, el("code", {}, code), ` ${spec.description || ""}`,
      media.length ? el("span", { class: "muted" }, ` (${media.join(", ")})`) : null);
  });
  return el("ul", {}, ...items);
}

function operation(path, method, op, index) {
  const id = `op-${index}`;
  return {
    link: el("a", { href: `#${id}` }, `${method.toUpperCase()} ${path}`),
    node: el("article", { class: "op", id },
      el("h3", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), path),
      op.summary ? el("strong", {}, op.summary) : null,
      op.description ? el("p", { class: "desc" }, op.description) : null,
      parameters(op), requestBody(op), el("h4", {}, "Responses"), responses(op)),
  };
}

function schemaNode(name, schema) {
  const required = new Set(schema.required || []);
  const rows = Object.entries(schema.properties || {}).map(([prop, spec]) =>
    el("tr", {},
      el("td", {}, el("code", {}, prop)),
      el("td", { class: "type" }, typeOf(spec)),
      el("td", {}, required.has(prop) ? "required" : ""),
      el("td", {}, [spec.description || "", limits(spec)].filter(Boolean).join("; "))));
  return el("article", { class: "op", id: `schema-${name}` },
    el("h3", {}, name),
    schema.description ? el("p", { class: "desc" }, schema.description) : null,
    rows.length ? el("table", {}, el("tbody", {}, ...rows)) : el("p", { class: "type" }, typeOf(schema)));
}

async function main() {
  const summary = document.getElementById("summary");
  let spec;
  try {
    const response = await fetch("/openapi.json", { credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    spec = await response.json();
  } catch (error) {
    summary.textContent = `Could not load /openapi.json: ${error.message}`;
    return;
  }
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
  summary.textContent = spec.info.description || "";
  const toc = document.getElementById("toc");
  const paths = document.getElementById("paths");
  let index = 0;
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const { link, node } = operation(path, method, item[method], index++);
      toc.append(link);
      paths.append(node);
    }
  }
  const schemas = document.getElementById("schemas");
  for (const [name, schema] of Object.entries(spec.components?.schemas || {})) {
    schemas.append(schemaNode(name, schema));
  }
  document.body.dataset.ready = String(index);
}

main();
