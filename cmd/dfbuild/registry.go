package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
	"github.com/dfbuild/dfbuild/layerfs/registry"
)

// registryOptions are the flags about registries.
type registryOptions struct {
	pull bool
	push bool
}

func addRegistryFlags(f *pflag.FlagSet, o *registryOptions) {
	f.BoolVar(&o.pull, "pull", false, "ask the registry again for bases named by tag, instead of using what the cache resolved them to before")
}

// addPushFlag declares --push, which only builds take.
func addPushFlag(f *pflag.FlagSet, o *registryOptions) {
	f.BoolVar(&o.push, "push", false, "push the image to its registry under every -t name (shorthand for -o type=registry); no archive is written unless -o names one")
}

// newRegistryClient is the client every registry access of one command shares: the
// cache under $XDG_CACHE_HOME/dfbuild, the configuration at
// registry.DefaultConfigPath, docker's and podman's credentials.
func newRegistryClient(o registryOptions, progress func(registry.Event)) (*registry.Client, error) {
	path := registry.DefaultConfigPath()
	cfg, err := registry.LoadConfig(path, os.Getenv(registry.ConfigEnv) != "")
	if err != nil {
		return nil, err
	}
	return registry.New(registry.Options{Config: cfg, Refresh: o.pull, Progress: progress})
}

// useRegistries lets the build pull the images no context serves.
func (p *plan) useRegistries(o registryOptions, prog *progress) error {
	c, err := newRegistryClient(o, newTransfers(prog).event)
	if err != nil {
		return err
	}
	p.images, p.registry = registrySource{c}, c
	return nil
}

// registrySource serves a build's image names from registries through the cache.
type registrySource struct{ c *registry.Client }

func (s registrySource) Image(ctx context.Context, ref string, p interp.Platform) (*interp.LocalImage, error) {
	pulled, err := s.c.Pull(ctx, ref, v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant})
	if err != nil {
		return nil, err
	}
	return &interp.LocalImage{Layout: pulled.Layout, Manifest: layerfs.Digest(pulled.Manifest.String()), Name: pulled.Name}, nil
}

// transfers shows registry downloads and uploads: one line a blob in plain mode
// with its size and rate, a live line on a terminal, an event a blob in JSON.
type transfers struct {
	p      *progress
	mu     sync.Mutex
	start  map[string]time.Time
	active map[string]registry.Event
	last   time.Time
}

func newTransfers(p *progress) *transfers {
	return &transfers{p: p, start: map[string]time.Time{}, active: map[string]registry.Event{}}
}

func (t *transfers) event(e registry.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := e.Action + " " + e.Digest
	if _, ok := t.start[key]; !ok {
		t.start[key] = time.Now()
	}
	finished := e.Status != "" && e.Status != "compressing"
	if finished {
		delete(t.active, key)
	} else {
		t.active[key] = e
	}
	switch t.p.mode {
	case "quiet":
	case "json":
		if finished {
			t.p.json(map[string]any{"event": e.Action, "ref": e.Ref, "digest": e.Digest, "bytes": e.Total, "status": e.Status,
				"seconds": round(time.Since(t.start[key]))})
		}
	case "tty":
		if finished {
			fmt.Fprint(t.p.w, "\r\x1b[K")
			t.line(t.p.w, e, key)
			return
		}
		if time.Since(t.last) < 100*time.Millisecond {
			return
		}
		t.last = time.Now()
		var done, total int64
		for _, a := range t.active {
			done += a.Done
			total += a.Total
		}
		verb := e.Action + "ing"
		if e.Status == "compressing" {
			verb = "compressing"
		}
		fmt.Fprintf(t.p.w, "\r\x1b[K%s %d blob%s: %s / %s", verb, len(t.active), plural(len(t.active)), inspect.HumanSize(done), inspect.HumanSize(total))
	default:
		// A blob the cache or the registry already had is no news in plain lines.
		if e.Status == "done" || e.Status == "mounted" {
			t.line(t.p.w, e, key)
		}
	}
}

// line reports one finished blob.
func (t *transfers) line(w io.Writer, e registry.Event, key string) {
	d := e.Digest
	if len(d) > 19 {
		d = d[:19]
	}
	switch e.Status {
	case "done":
		secs := time.Since(t.start[key]).Seconds()
		rate := ""
		if secs > 0 {
			rate = fmt.Sprintf(", %s/s", inspect.HumanSize(int64(float64(e.Total)/secs)))
		}
		fmt.Fprintf(w, "%s %s %s in %.1fs%s\n", e.Action, d, inspect.HumanSize(e.Total), secs, rate)
	default:
		fmt.Fprintf(w, "%s %s %s %s\n", e.Action, d, inspect.HumanSize(e.Total), e.Status)
	}
}

func newPruneCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Empty the registry blob cache",
		Long: `prune removes every image and blob that pulls and pushes left in the cache
($XDG_CACHE_HOME/dfbuild, by default ~/.cache/dfbuild) and says how much it freed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := registry.DefaultCacheDir()
			if err != nil {
				return err
			}
			freed, err := (&registry.Cache{Dir: dir}).Prune()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Freed %s from %s\n", inspect.HumanSize(freed), dir)
			return nil
		},
	}
}
