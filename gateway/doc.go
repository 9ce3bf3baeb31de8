// Package gateway is Chorus's HTTP layer: the KServe V1 and Open Inference
// Protocol V2 routes (gin), the registry of models by name, readiness, and
// the one place where errors become HTTP statuses. It sees backends only
// through protocol.Predictor and never imports a backend package.
package gateway
