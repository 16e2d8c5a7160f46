// Package deploy holds imapcopy's Kubernetes deployment: the kustomize base and its
// overlays (base/, overlays/dev, overlays/prod), the values for the official NATS
// Helm chart (nats/), and the operations guide (README.md).
//
// The package has no code of its own; its tests are the offline checks that CI runs
// on every change, with no cluster and no network:
//
//   - every kustomization renders (kustomize as a library, as `kustomize build`
//     would) and every object decodes strictly into its Kubernetes API type: an
//     unknown or misspelt field, a duplicate, a wrong apiVersion fails;
//   - the objects fit together: selectors select the pods they mean, names and keys
//     that pods reference exist, probes name ports that exist, every pod is hardened,
//     the KEDA trigger names the stream and consumer that pkg/taskqueue creates and
//     scales by the copier's concurrency, grace periods outlast shutdown deadlines;
//   - the monitoring (monitoring/): the PrometheusRule's alerts pass promtool's
//     check and their unit tests, the Grafana dashboard's queries parse, and both
//     name only metrics that the services export;
//   - the Dockerfiles parse, lint clean (BuildKit's own rules), build a static,
//     version-stamped binary of a package that exists, and run it as a numeric
//     non-root user.
package deploy
