package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
)

// DefaultKeychain finds credentials where docker and buildx find them, then where
// podman does: go-containerregistry's default keychain reads $DOCKER_CONFIG/config.json
// or ~/.docker/config.json with its auths, credsStore and credHelpers (docker/cli's
// loader). That keychain reads podman's auth.json only when no docker config exists;
// a REGISTRY_AUTH_FILE the user set is asked after the docker config, whatever it
// holds. Without credentials, access is anonymous.
func DefaultKeychain() authn.Keychain {
	chain := []authn.Keychain{authn.DefaultKeychain}
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		chain = append(chain, &authFile{path: f})
	}
	return authn.NewMultiKeychain(chain...)
}

// authFile is containers-auth.json(5): {"auths": {"host[/repo]": {"auth":
// base64("user:password")}}}, looked up by the most specific key first, as podman
// does.
type authFile struct {
	path  string
	once  sync.Once
	auths map[string]authEntry
	err   error
}

type authEntry struct {
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
}

func (a *authFile) load() {
	b, err := os.ReadFile(a.path)
	if err != nil {
		if os.IsNotExist(err) {
			return
		}
		a.err = fmt.Errorf("reading REGISTRY_AUTH_FILE: %w", err)
		return
	}
	var f struct {
		Auths map[string]authEntry `json:"auths"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		a.err = fmt.Errorf("reading REGISTRY_AUTH_FILE %s: %w", a.path, err)
		return
	}
	a.auths = f.Auths
}

func (a *authFile) Resolve(r authn.Resource) (authn.Authenticator, error) {
	a.once.Do(a.load)
	if a.err != nil {
		return nil, a.err
	}
	host := r.RegistryStr()
	keys := []string{}
	if repo, ok := r.(interface{ RepositoryStr() string }); ok {
		// Most specific first: host/ns/repo, host/ns, host.
		parts := strings.Split(repo.RepositoryStr(), "/")
		for i := len(parts); i > 0; i-- {
			keys = append(keys, host+"/"+strings.Join(parts[:i], "/"))
		}
	}
	keys = append(keys, host)
	if host == "index.docker.io" {
		keys = append(keys, "docker.io", "https://index.docker.io/v1/")
	}
	for _, k := range keys {
		e, ok := a.auths[k]
		if !ok {
			continue
		}
		if e.IdentityToken != "" {
			return authn.FromConfig(authn.AuthConfig{IdentityToken: e.IdentityToken}), nil
		}
		raw, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return nil, fmt.Errorf("REGISTRY_AUTH_FILE %s: the entry for %q is not base64: %w", a.path, k, err)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, fmt.Errorf("REGISTRY_AUTH_FILE %s: the entry for %q is not user:password", a.path, k)
		}
		return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}), nil
	}
	return authn.Anonymous, nil
}
