// Package app is driftline's one composition root: it maps a pipeline spec
// onto each package's own Config, builds the Kafka and Redis clients
// through the connectors, and wires the data plane, the label plane, the
// control plane (alerts, governance, audit) and the admin server. The CLI
// (cmd/driftline) parses flags, calls app, and prints.
package app
