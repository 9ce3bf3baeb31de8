package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrUnsupported is returned for storage URI schemes Chorus cannot read yet.
var ErrUnsupported = errors.New("not supported yet")

// Location is a parsed storage URI.
type Location struct {
	// Path is set for local folders (plain paths and file://).
	Path string
	// Repo and Revision are set for hf:// URIs; Revision defaults to "main".
	Repo, Revision string
}

// IsHub reports whether the location is on the Hugging Face Hub.
func (l Location) IsHub() bool { return l.Repo != "" }

func (l Location) String() string {
	if l.IsHub() {
		return "hf://" + l.Repo + "@" + l.Revision
	}
	return l.Path
}

var repoRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$`)

// Parse reads a storage URI. Relative local paths are resolved against baseDir.
func Parse(uri, baseDir string) (Location, error) {
	scheme, rest, hasScheme := strings.Cut(uri, "://")
	switch {
	case uri == "":
		return Location{}, errors.New("empty storage URI")
	case !hasScheme:
		if !filepath.IsAbs(uri) {
			uri = filepath.Join(baseDir, uri)
		}
		return Location{Path: uri}, nil
	case scheme == "file":
		if !filepath.IsAbs(rest) {
			rest = filepath.Join(baseDir, rest)
		}
		return Location{Path: rest}, nil
	case scheme == "hf":
		repo, rev, _ := strings.Cut(rest, "@")
		if !repoRE.MatchString(repo) || strings.Contains(repo, "..") {
			return Location{}, fmt.Errorf("%q: want hf://ORG/REPO[@REVISION]", uri)
		}
		if rev == "" {
			rev = "main"
		}
		if strings.ContainsAny(rev, `\`) || strings.Contains(rev, "..") {
			return Location{}, fmt.Errorf("%q: bad revision %q", uri, rev)
		}
		return Location{Repo: repo, Revision: rev}, nil
	default:
		return Location{}, fmt.Errorf("%s:// storage is %w (use a local path, file:// or hf://)", scheme, ErrUnsupported)
	}
}

// Resolve returns a local folder holding the model at loc, downloading it
// from the Hub when needed.
func Resolve(ctx context.Context, loc Location, hub *Hub) (string, error) {
	return ResolveGraph(ctx, loc, hub, "")
}

// ResolveGraph is Resolve for one ONNX graph of the model (graph relative
// to the folder, "" for the default): from the Hub only that graph and its
// external data are downloaded.
func ResolveGraph(ctx context.Context, loc Location, hub *Hub, graph string) (string, error) {
	if !loc.IsHub() {
		st, err := os.Stat(loc.Path)
		if err != nil {
			return "", fmt.Errorf("model folder: %w", err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("model folder %s is not a directory", loc.Path)
		}
		return loc.Path, nil
	}
	return hub.SnapshotGraph(ctx, loc.Repo, loc.Revision, graph)
}
