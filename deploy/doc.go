// Package deploy holds Chorus's Kubernetes (kustomize) and docker-compose
// files, and the tests that decode them strictly into the Kubernetes, KServe
// and compose-spec types. It is a module of its own so that Chorus's binary
// does not depend on those large API modules.
package deploy
