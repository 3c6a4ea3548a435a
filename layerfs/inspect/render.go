package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/dfbuild/dfbuild/layerfs/image"
)

// Options choose what the renderers include.
type Options struct {
	// Files adds each layer's entries: a listing per layer in text, the entries
	// arrays in JSON.
	Files bool
	// Config adds the config, indented, to the text form (JSON always has it).
	Config bool
}

// WriteJSON writes the report as indented JSON, ending in a newline.
func WriteJSON(w io.Writer, r *Report, o Options) error {
	out := *r
	if !o.Files {
		out.Images = make([]*ImageReport, len(r.Images))
		for i, img := range r.Images {
			c := *img
			c.Layers = make([]*LayerReport, len(img.Layers))
			for j, l := range img.Layers {
				lc := *l
				lc.Entries = nil
				c.Layers[j] = &lc
			}
			out.Images[i] = &c
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(&out)
}

// WriteText writes the report for people: per image its names, an overview table
// in the manner of docker history, and the totals.
func WriteText(w io.Writer, r *Report, o Options) error {
	ew := &ErrWriter{W: w}
	for i, img := range r.Images {
		if i > 0 {
			fmt.Fprintln(ew)
		}
		writeImage(ew, img, o)
	}
	if len(r.Images) == 0 {
		fmt.Fprintf(ew, "%s holds no images\n", r.Source)
	}
	return ew.Err
}

func writeImage(w io.Writer, img *ImageReport, o Options) {
	fmt.Fprintf(w, "Image %s\n", img.ID)
	tags := "none"
	if len(img.Tags) > 0 {
		names := make([]string, len(img.Tags))
		for i, t := range img.Tags {
			names[i] = familiar(t)
		}
		tags = strings.Join(names, ", ")
	}
	fmt.Fprintf(w, "Tags: %s\n", tags)
	created := "unknown"
	if img.Created != nil {
		created = img.Created.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "Platform: %s, created %s\n", img.Platform, created)
	if o.Config {
		var buf bytes.Buffer
		if err := json.Indent(&buf, img.Config, "", "  "); err == nil {
			fmt.Fprintf(w, "Config:\n%s\n", buf.String())
		}
	}
	fmt.Fprintln(w)

	tw := newTable(w)
	fmt.Fprintln(tw, "#\tCREATED BY\tLAYER\tSIZE\tADDED\tCHANGED\tREMOVED")
	for _, h := range img.History {
		createdBy := rowLabel(h)
		layer, size, counts := "config only", "", "\t\t"
		switch {
		case h.Layer > 0 && img.LayersUnread:
			l := img.Layers[h.Layer-1]
			layer, size, counts = ShortDigest(l.DiffID), HumanSize(l.StoredSize), "-\t-\t-"
		case h.Layer > 0:
			l := img.Layers[h.Layer-1]
			layer, size = ShortDigest(l.DiffID), HumanSize(l.ContentSize)
			counts = fmt.Sprintf("%d\t%d\t%d", l.Added, l.Changed, l.Removed)
		case !h.EmptyLayer:
			layer = "missing layer"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", h.Index, Truncate(createdBy, 45), layer, size, counts)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if img.LayersUnread {
		var stored int64
		for _, l := range img.Layers {
			stored += l.StoredSize
		}
		fmt.Fprintf(w, "%d layer%s, %s as stored (SIZE is the stored blob); the layers were not read: --files reads them\n",
			len(img.Layers), plural(len(img.Layers)), HumanSize(stored))
		return
	}
	fmt.Fprintf(w, "%d layer%s, %s in files, %s as tar\n", len(img.Layers), plural(len(img.Layers)),
		HumanSize(img.ContentSize), HumanSize(img.Size))
	fmt.Fprintf(w, "Wasted: %s in %d file%s that later layers overwrite or remove\n",
		HumanSize(img.WastedBytes), img.WastedFiles, plural(img.WastedFiles))

	if o.Files {
		for _, l := range img.Layers {
			fmt.Fprintln(w)
			fmt.Fprintf(w, "Layer %d %s\n", l.Index, l.DiffID)
			if l.History > 0 {
				fmt.Fprintf(w, "  %s\n", Truncate(rowLabel(img.History[l.History-1]), 100))
			}
			fmt.Fprintf(w, "  %s\n", LayerSummary(l))
			WriteEntries(w, l.Entries, "  ")
		}
	}
}

// rowLabel is what a history row says it did: created_by, or the comment when that
// is empty, as for an image that docker import made ("Imported from ...").
func rowLabel(h HistoryRow) string {
	switch {
	case h.NoHistory:
		return "(no history entry)"
	case h.CreatedBy == "":
		return h.Comment
	}
	return h.CreatedBy
}

// LayerSummary is one line about a layer's size and changes.
func LayerSummary(l *LayerReport) string {
	s := fmt.Sprintf("%s in files, %s as tar", HumanSize(l.ContentSize), HumanSize(l.Size))
	if l.Compression != "" {
		s += fmt.Sprintf(" (%s as stored, %s)", HumanSize(l.StoredSize), l.Compression)
	}
	s += fmt.Sprintf("; %d added, %d changed, %d removed", l.Added, l.Changed, l.Removed)
	if l.WastedFiles > 0 || l.WastedBytes > 0 {
		s += fmt.Sprintf("; wasted %s in %d file%s", HumanSize(l.WastedBytes), l.WastedFiles, plural(l.WastedFiles))
	}
	return s
}

// WriteEntries lists entries one a line, each prefixed by indent:
//
//	A|C|D  MODE  UID:GID  SIZE  PATH [-> TARGET]  [NOTE]
//
// A is added, C changed, D removed (a whiteout); SIZE is the exact byte count of a
// regular file. NOTE says what a removal hides and whether a later layer wastes the
// entry.
func WriteEntries(w io.Writer, entries []Entry, indent string) {
	tw := newTable(w)
	for _, e := range entries {
		mark := map[string]string{Added: "A", Changed: "C", Removed: "D"}[e.Change]
		mode, owner, size := LsMode(e), fmt.Sprintf("%d:%d", e.UID, e.GID), "-"
		if e.Type == TypeFile {
			size = fmt.Sprint(e.Size)
		}
		name := e.Path
		switch e.Type {
		case TypeWhiteout:
			mode, owner, size = "whiteout", "", ""
		case TypeOpaque:
			mode, owner, size, name = "opaque", "", "", strings.TrimSuffix(e.Path, "/")+"/*"
		case TypeSymlink:
			name += " -> " + e.Link
		case TypeHardlink:
			name += " => " + e.Link
		case TypeChar, TypeBlock:
			size = e.Device
		}
		var notes []string
		if e.HiddenBytes > 0 {
			notes = append(notes, fmt.Sprintf("hides %d bytes below", e.HiddenBytes))
		}
		if e.Wasted != "" {
			notes = append(notes, fmt.Sprintf("wasted: %s in layer %d", e.Wasted, e.WastedBy))
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", indent, mark, mode, owner, size, name, strings.Join(notes, "; "))
	}
	tw.Flush()
}

// LsMode renders an entry's type and mode as ls -l does: "drwxr-xr-x", "-rwsr-xr-x".
func LsMode(e Entry) string {
	var m uint32
	fmt.Sscanf(e.Mode, "%o", &m)
	t := map[string]byte{TypeDir: 'd', TypeSymlink: 'l', TypeChar: 'c', TypeBlock: 'b', TypeFIFO: 'p', TypeOther: '?'}[e.Type]
	if t == 0 {
		t = '-'
	}
	b := []byte{t}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		c := byte('-')
		if m&(1<<(8-i)) != 0 {
			c = rwx[i]
		}
		b = append(b, c)
	}
	special := func(bit uint32, at int, set, unset byte) {
		if m&bit == 0 {
			return
		}
		if b[at] == '-' {
			b[at] = unset
		} else {
			b[at] = set
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

// ShortDigest is the first 12 hex digits of a digest, as docker shows IDs.
func ShortDigest(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// Truncate shortens s to n characters, with "…" at the end, after folding its
// whitespace and dropping the "/bin/sh -c #(nop) " that the classic builder puts
// before instructions that run nothing.
func Truncate(s string, n int) string {
	s = strings.TrimSpace(strings.TrimPrefix(s, "/bin/sh -c #(nop) "))
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// HumanSize renders a byte count as docker does, in powers of 1024.
func HumanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// familiar shortens a fully qualified name as docker shows it; other names (an OCI
// ref name may be a bare tag) are shown as stored, since normalising would change them.
func familiar(tag string) string {
	if t, err := image.ParseTag(tag); err == nil && t.Full == tag {
		return t.Familiar
	}
	return tag
}

// table is a tabwriter whose lines lose the padding after their last cell.
type table struct {
	*tabwriter.Writer
	buf bytes.Buffer
	w   io.Writer
}

func newTable(w io.Writer) *table {
	t := &table{w: w}
	t.Writer = tabwriter.NewWriter(&t.buf, 0, 8, 2, ' ', 0)
	return t
}

func (t *table) Flush() {
	t.Writer.Flush()
	for _, line := range strings.SplitAfter(t.buf.String(), "\n") {
		if line != "" {
			io.WriteString(t.w, strings.TrimRight(line, " \n")+"\n")
		}
	}
	t.buf.Reset()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// ErrWriter keeps the first write error of W, so a long listing can be written
// without a check per line and still report a failed write once (Err).
type ErrWriter struct {
	W   io.Writer
	Err error
}

func (e *ErrWriter) Write(p []byte) (int, error) {
	if e.Err != nil {
		return 0, e.Err
	}
	n, err := e.W.Write(p)
	e.Err = err
	return n, err
}
