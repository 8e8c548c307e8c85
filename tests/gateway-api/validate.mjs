// Validates the objects of a rendered overlay that Kubernetes' own schemas
// do not know, and writes the others to the second file, for
// kubernetes-validate:
//   - Gateway API's (gateway.networking.k8s.io), against the schemas of the
//     release @kubernetes-models/gateway-api was generated from;
//   - Argo Rollouts' (argoproj.io), against those of the release
//     @kubernetes-models/argo-rollouts was generated from.
// Those schemas let unknown fields through, and a traffic router plugin's
// settings are free-form, so what ties the objects together is checked
// here too: each Rollout's Deployment, Services, HTTPRoute and analysis
// exist and agree, and each analysis query reads a verdict the rules file
// records (the rules that promtool's tests cover).
//   node validate.mjs rendered.yaml rest.yaml [canary.rules.yml]
import { readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments, parse, stringify } from "yaml";
import * as gateway from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1";
import * as rollouts from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";

const [input, rest, rulesFile] = process.argv.slice(2);
const documents = parseAllDocuments(readFileSync(input, "utf8")).map((d) => d.toJS());
const others = [];
const checked = [];
let failed = false;
const fail = (message) => {
  console.error(message);
  failed = true;
};
const models = {
  "gateway.networking.k8s.io/v1": gateway,
  "argoproj.io/v1alpha1": rollouts,
};
for (const object of documents) {
  if (!object) continue;
  const group = String(object.apiVersion).split("/")[0];
  if (group !== "gateway.networking.k8s.io" && group !== "argoproj.io") {
    others.push(object);
    continue;
  }
  const name = `${object.kind} ${object.metadata?.name}`;
  const Model = models[object.apiVersion]?.[object.kind];
  if (!Model) {
    fail(`${name}: ${object.apiVersion} ${object.kind} is not a kind the pinned releases know`);
    continue;
  }
  try {
    new Model(object).validate();
    checked.push(name);
  } catch (error) {
    fail(`${name}: ${error.message}`);
  }
}

const all = (kind) => documents.filter((o) => o?.kind === kind);
const named = (kind, name) => all(kind).find((o) => o.metadata.name === name);

// With a Gateway of the overlay's own, every route attaches to it.
const gateways = all("Gateway").map((o) => o.metadata.name);
for (const route of all("HTTPRoute")) {
  const parents = route.spec.parentRefs.map((p) => p.name);
  if (gateways.length > 0 && !parents.every((p) => gateways.includes(p))) {
    fail(`HTTPRoute ${route.metadata.name} attaches to ${parents}, not to Gateway ${gateways}`);
  }
}

// Each Rollout runs a rendered Deployment, routes through a rendered
// HTTPRoute that has a rule to both its Services (the plugin sets the
// weights of those two), and is analysed by rendered templates whose
// arguments it gives; an autoscaler scales the Rollout, not the Deployment.
const recorded = new Set(
  rulesFile
    ? parse(readFileSync(rulesFile, "utf8")).groups.flatMap((g) => g.rules.map((r) => r.record))
    : [],
);
for (const rollout of all("Rollout")) {
  const name = `Rollout ${rollout.metadata.name}`;
  const workload = rollout.spec.workloadRef;
  if (workload?.kind !== "Deployment" || !named("Deployment", workload.name)) {
    fail(`${name}: its workloadRef names no rendered Deployment`);
  }
  const canary = rollout.spec.strategy?.canary;
  if (!canary) {
    fail(`${name}: no canary strategy`);
    continue;
  }
  for (const service of [canary.stableService, canary.canaryService]) {
    if (!named("Service", service)) fail(`${name}: Service ${service} is not rendered`);
  }
  const plugin = canary.trafficRouting?.plugins?.["argoproj-labs/gatewayAPI"];
  const route = plugin && named("HTTPRoute", plugin.httpRoute);
  if (!route) {
    fail(`${name}: its gatewayAPI plugin names no rendered HTTPRoute`);
  } else {
    const both = route.spec.rules.some((rule) => {
      const backends = (rule.backendRefs ?? []).map((b) => b.name);
      return backends.includes(canary.stableService) && backends.includes(canary.canaryService);
    });
    if (!both) {
      fail(`${name}: HTTPRoute ${plugin.httpRoute} has no rule to both ${canary.stableService} and ${canary.canaryService}`);
    }
    // Any other rule would lose its backend's weight to the plugin.
    const others = route.spec.rules.filter((rule) =>
      (rule.backendRefs ?? []).some((b) => ![canary.stableService, canary.canaryService].includes(b.name)),
    );
    if (others.length > 0) fail(`${name}: HTTPRoute ${plugin.httpRoute} routes to other Services too`);
  }
  for (const label of ["stableMetadata", "canaryMetadata"]) {
    if (!canary[label]?.labels?.track) fail(`${name}: ${label} sets no \`track\` label`);
  }
  const given = new Set((canary.analysis?.args ?? []).map((a) => a.name));
  for (const { templateName } of canary.analysis?.templates ?? []) {
    const template = named("AnalysisTemplate", templateName);
    if (!template) {
      fail(`${name}: AnalysisTemplate ${templateName} is not rendered`);
      continue;
    }
    for (const arg of template.spec.args ?? []) {
      if (arg.value === undefined && !given.has(arg.name)) {
        fail(`${name}: gives AnalysisTemplate ${templateName} no \`${arg.name}\``);
      }
    }
  }
  const scalers = all("HorizontalPodAutoscaler").filter((h) => h.spec.scaleTargetRef.name === rollout.metadata.name);
  if (scalers.length !== 1 || scalers[0].spec.scaleTargetRef.kind !== "Rollout") {
    fail(`${name}: one HorizontalPodAutoscaler must scale it (not its Deployment)`);
  }
}
for (const template of all("AnalysisTemplate")) {
  for (const metric of template.spec.metrics) {
    const query = metric.provider?.prometheus?.query ?? "";
    const verdict = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{component="\{\{args\.module\}\}"\}$/.exec(query)?.[1];
    if (!verdict || (rulesFile && !recorded.has(verdict))) {
      fail(`AnalysisTemplate ${template.metadata.name}, ${metric.name}: \`${query}\` reads no verdict ${rulesFile ?? ""} records`);
    }
  }
}

writeFileSync(rest, others.map((o) => stringify(o)).join("---\n"));
if (failed) process.exit(1);
console.log(checked.join(", "));
