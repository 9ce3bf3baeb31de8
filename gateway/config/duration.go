package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "30s" or "1m30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("want a duration like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like \"30s\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as Go prints it ("30s", "1m30s").
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
