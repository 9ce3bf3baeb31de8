// Package config is the YAML model registry: its schema, strict loading
// (unknown keys, duplicates and bad values are errors that name their field
// path), defaults applied once, and paths resolved against the file. It knows
// nothing of HTTP or of how backends are built.
package config
