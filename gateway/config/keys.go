package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// KeysFile is an API keys file: who may call, which models, how fast.
type KeysFile struct {
	Keys []Key `yaml:"keys"`
}

// Key is one API key. The key itself is never in the file in the clear:
// either its SHA-256 (key_sha256) or the name of an environment variable
// holding it (key_env).
type Key struct {
	// Name identifies the key in logs; required, unique.
	Name string `yaml:"name"`
	// KeySHA256 is the hex SHA-256 of the key (printf %s KEY | sha256sum).
	KeySHA256 string `yaml:"key_sha256"`
	// KeyEnv names an environment variable holding the key.
	KeyEnv string `yaml:"key_env"`
	// Models the key may use; "*" for all. Required.
	Models []string `yaml:"models"`
	// Rate is the key's requests per second (token bucket); 0: no limit.
	Rate float64 `yaml:"rate"`
	// Burst is how many requests may come at once. Default: max(1, rate).
	Burst int `yaml:"burst"`
	// Hash is the resolved SHA-256 of the key (from key_sha256 or key_env).
	Hash [32]byte `yaml:"-"`
}

// LoadKeys reads and checks a keys file; getenv resolves key_env.
func LoadKeys(path string, getenv func(string) string) ([]Key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	var f KeysFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", path)
	}
	var errs []error
	seen := map[string]bool{}
	for i := range f.Keys {
		k := &f.Keys[i]
		p := fmt.Sprintf("keys[%d]", i)
		if k.Name != "" {
			p = fmt.Sprintf("keys[%s]", k.Name)
		}
		switch {
		case k.Name == "" || seen[k.Name]:
			errs = append(errs, fmt.Errorf("%s.name: required and unique", p))
		case (k.KeySHA256 == "") == (k.KeyEnv == ""):
			errs = append(errs, fmt.Errorf("%s: give exactly one of key_sha256 and key_env", p))
		case k.KeySHA256 != "":
			b, err := hex.DecodeString(k.KeySHA256)
			if err != nil || len(b) != 32 {
				errs = append(errs, fmt.Errorf("%s.key_sha256: want 64 hex digits", p))
			}
			copy(k.Hash[:], b)
		default:
			v := getenv(k.KeyEnv)
			if len(v) < 16 {
				errs = append(errs, fmt.Errorf("%s.key_env: $%s is unset or shorter than 16 characters", p, k.KeyEnv))
			}
			k.Hash = hashKey(v)
		}
		seen[k.Name] = true
		if len(k.Models) == 0 {
			errs = append(errs, fmt.Errorf(`%s.models: required (use ["*"] for all)`, p))
		}
		if k.Rate < 0 || k.Burst < 0 {
			errs = append(errs, fmt.Errorf("%s: rate and burst must not be negative", p))
		}
		if k.Burst == 0 {
			k.Burst = max(1, int(k.Rate))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.Keys, nil
}
