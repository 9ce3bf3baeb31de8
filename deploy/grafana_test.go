package deploy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// The Chorus dashboard decodes into Grafana's own dashboard types (the
// grafana-foundation-sdk, generated from Grafana's schemas), panel options
// included, with every field those schemas require and the right types.
// That its queries name metrics Chorus exports is e2e's
// TestDashboardQueriesResolve, against the running binary.
func TestGrafanaDashboard(t *testing.T) {
	plugins.RegisterDefaultPlugins() // decode each panel type's options with its schema
	raw, err := os.ReadFile(filepath.Join("grafana", "dashboards", "chorus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard.Dashboard
	if err := noErrors(d.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("chorus.json: %v", err)
	}
	if err := noErrors(d.Validate()); err != nil {
		t.Fatalf("chorus.json: %v", err)
	}
	if d.Uid == nil || *d.Uid != "chorus" || len(d.Panels) < 12 {
		t.Errorf("uid %v, %d panels", d.Uid, len(d.Panels))
	}
}

// noErrors turns the SDK's empty error list (returned as a non-nil error)
// into nil.
func noErrors(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}
