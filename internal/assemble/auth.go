package assemble

import (
	"fmt"
	"os"

	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
)

// Auth reads the API keys, if any; keys are kept only as hashes.
func Auth(a config.Auth) (*gateway.Auth, error) {
	if a.KeysFile == "" {
		return nil, nil
	}
	keys, err := config.LoadKeys(a.KeysFile, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("auth.keys_file: %w", err)
	}
	var out []gateway.APIKey
	for _, k := range keys {
		out = append(out, gateway.APIKey{Name: k.Name, Hash: k.Hash, Models: k.Models, Rate: k.Rate, Burst: k.Burst})
	}
	return gateway.NewAuth(out), nil
}
