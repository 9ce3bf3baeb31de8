package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/chorusml/chorus/protocol"
)

// APIKey is one client's credentials and rights.
type APIKey struct {
	// Name identifies the key in logs and metrics; never the key itself.
	Name string
	// Hash is the SHA-256 of the key: the server keeps no key in the clear.
	Hash [sha256.Size]byte
	// Models the key may use ("*": all).
	Models []string
	// Rate and Burst bound its requests per second (0: no limit).
	Rate  float64
	Burst int
}

// Auth checks `Authorization: Bearer <key>` on the model routes. A nil
// *Auth lets everyone in.
type Auth struct {
	keys     []APIKey
	limiters []*rate.Limiter
}

// NewAuth prepares the keys; every key gets its own token bucket.
func NewAuth(keys []APIKey) *Auth {
	a := &Auth{keys: keys}
	for _, k := range keys {
		var l *rate.Limiter
		if k.Rate > 0 {
			l = rate.NewLimiter(rate.Limit(k.Rate), max(1, k.Burst))
		}
		a.limiters = append(a.limiters, l)
	}
	return a
}

// HashKey is the stored form of a key (SHA-256).
func HashKey(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }

const keyNameKey = "chorus.key"

// check finds the key presented. Every stored hash is compared, in constant
// time, so that timing says nothing about which key came close.
func (a *Auth) check(c *gin.Context) (int, error) { return a.checkHeader(c.GetHeader("Authorization")) }

// checkHeader is check on an Authorization value (HTTP header or gRPC
// "authorization" metadata).
func (a *Auth) checkHeader(h string) (int, error) {
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return -1, fmt.Errorf("%w: send Authorization: Bearer <API key>", protocol.ErrUnauthorized)
	}
	sum := HashKey(token)
	found := -1
	for i, k := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], k.Hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return -1, fmt.Errorf("%w: unknown API key", protocol.ErrUnauthorized)
	}
	return found, nil
}

// middleware authenticates, authorises the model named in the path, and
// applies the key's rate.
func (a *Auth) middleware(s *Server) gin.HandlerFunc {
	return func(c *gin.Context) {
		i, err := a.check(c)
		if err != nil {
			s.abort(c, err)
			return
		}
		c.Set(keyNameKey, a.keys[i].Name)
		name, _, _ := strings.Cut(c.Param("name"), ":")
		if err := a.admit(i, name); err != nil {
			s.abort(c, err)
			return
		}
		c.Next()
	}
}

// admit checks that key i may use model name ("": no model named) and is
// within its rate.
func (a *Auth) admit(i int, name string) error {
	k := a.keys[i]
	if name != "" && !slices.Contains(k.Models, "*") && !slices.Contains(k.Models, name) {
		return fmt.Errorf("%w: API key %q may not use model %q", protocol.ErrForbidden, k.Name, name)
	}
	if l := a.limiters[i]; l != nil && !l.Allow() {
		return fmt.Errorf("%w: API key %q is over %v requests per second", protocol.ErrRateLimited, k.Name, k.Rate)
	}
	return nil
}
