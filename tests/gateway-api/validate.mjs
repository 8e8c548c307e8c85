// Validates every Gateway API object (gateway.networking.k8s.io) of a
// rendered overlay against the schemas of the Gateway API release
// @kubernetes-models/gateway-api was generated from, and writes the other
// objects to the second file, for kubernetes-validate.
//   node validate.mjs rendered.yaml rest.yaml
import { readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments, stringify } from "yaml";
import * as v1 from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1";

const [input, rest] = process.argv.slice(2);
const documents = parseAllDocuments(readFileSync(input, "utf8")).map((d) => d.toJS());
const others = [];
const checked = [];
let failed = false;
for (const object of documents) {
  if (!object) continue;
  if (!String(object.apiVersion).startsWith("gateway.networking.k8s.io/")) {
    others.push(object);
    continue;
  }
  const name = `${object.kind} ${object.metadata?.name}`;
  const Model = object.apiVersion === "gateway.networking.k8s.io/v1" && v1[object.kind];
  if (!Model) {
    console.error(`${name}: ${object.apiVersion} ${object.kind} is not in Gateway API's standard channel`);
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    checked.push(name);
  } catch (error) {
    console.error(`${name}: ${error.message}`);
    failed = true;
  }
}
// With a Gateway of the overlay's own, every route attaches to it.
const gateways = documents.filter((o) => o?.kind === "Gateway").map((o) => o.metadata.name);
for (const route of documents.filter((o) => o?.kind === "HTTPRoute")) {
  const parents = route.spec.parentRefs.map((p) => p.name);
  if (gateways.length > 0 && !parents.every((p) => gateways.includes(p))) {
    console.error(`HTTPRoute ${route.metadata.name} attaches to ${parents}, not to Gateway ${gateways}`);
    failed = true;
  }
}
writeFileSync(rest, others.map((o) => stringify(o)).join("---\n"));
if (failed) process.exit(1);
console.log(`gateway-api: ${checked.join(", ")}`);
