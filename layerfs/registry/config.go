package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is the registry part of BuildKit's buildkitd.toml: one [registry."HOST"]
// table a host (BuildKit util/resolver/config RegistryConfig). dfbuild reads only
// that part, so an existing buildkitd.toml can serve as it is.
type Config struct {
	Registry map[string]HostConfig `toml:"registry"`
}

// HostConfig says how to reach one registry host.
type HostConfig struct {
	// Mirrors are tried in order before the host itself, for pulls only:
	// "host[:port][/path]".
	Mirrors []string `toml:"mirrors"`
	// HTTP allows plain HTTP (loopback hosts may use it without saying so).
	HTTP bool `toml:"http"`
	// Insecure accepts any TLS certificate, and plain HTTP too.
	Insecure bool `toml:"insecure"`
	// CA lists PEM files of extra certificate authorities to trust for this host.
	CA []string `toml:"ca"`
}

// ConfigEnv names the environment variable that overrides DefaultConfigPath.
const ConfigEnv = "DFBUILD_REGISTRY_CONFIG"

// DefaultConfigPath is where the registry configuration is read from:
// $DFBUILD_REGISTRY_CONFIG, else $XDG_CONFIG_HOME/dfbuild/buildkitd.toml (by default
// ~/.config/dfbuild/buildkitd.toml).
func DefaultConfigPath() string {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "dfbuild", "buildkitd.toml")
}

// LoadConfig reads the configuration at path. A missing file is an empty
// configuration unless required is set (a path the user named).
func LoadConfig(path string, required bool) (*Config, error) {
	c := &Config{Registry: map[string]HostConfig{}}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !required {
			return c, nil
		}
		return nil, fmt.Errorf("reading the registry configuration: %w", err)
	}
	if err := toml.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("reading the registry configuration %s: %w", path, err)
	}
	norm := map[string]HostConfig{}
	for host, hc := range c.Registry {
		for i, m := range hc.Mirrors {
			m = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(m, "https://"), "http://"), "/")
			if m == "" {
				return nil, fmt.Errorf("%s: registry %q: an empty mirror", path, host)
			}
			hc.Mirrors[i] = m
		}
		for i, ca := range hc.CA {
			if !filepath.IsAbs(ca) {
				hc.CA[i] = filepath.Join(filepath.Dir(path), ca)
			}
		}
		norm[canonicalHost(host)] = hc
	}
	c.Registry = norm
	return c, nil
}

// host returns the settings of a registry host, matched as BuildKit matches them:
// docker.io, index.docker.io and registry-1.docker.io are one host.
func (c *Config) host(h string) HostConfig {
	if c == nil {
		return HostConfig{}
	}
	return c.Registry[canonicalHost(h)]
}

// canonicalHost spells Docker Hub one way, as go-containerregistry does.
func canonicalHost(h string) string {
	switch h {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return "index.docker.io"
	}
	return h
}

// Hosts lists the hosts configured, sorted, for messages.
func (c *Config) Hosts() []string {
	var hs []string
	for h := range c.Registry {
		hs = append(hs, h)
	}
	sort.Strings(hs)
	return hs
}
