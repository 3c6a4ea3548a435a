package layerfs

import (
	"fmt"
	"io"
	"time"
)

// Type is the kind of a node.
type Type uint8

// Node types. Sockets have no type: tar cannot hold them, and both Docker builders leave
// them out of layers.
const (
	TypeDir Type = iota + 1
	TypeReg
	TypeSymlink
	TypeChar
	TypeBlock
	TypeFIFO
)

func (t Type) String() string {
	switch t {
	case TypeDir:
		return "directory"
	case TypeReg:
		return "file"
	case TypeSymlink:
		return "symlink"
	case TypeChar:
		return "character device"
	case TypeBlock:
		return "block device"
	case TypeFIFO:
		return "fifo"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Opener opens a regular file's contents for reading. It is called once each time the
// contents are needed, so it must return the same bytes every time.
type Opener func() (io.ReadCloser, error)

// Node is one filesystem entry. Everything but the children is plain data; callers
// may copy a Node freely.
type Node struct {
	Type    Type
	Mode    uint32 // permission and special bits, as in a tar header (07777)
	UID     int
	GID     int
	ModTime time.Time
	// Stamped means ModTime is "the time of the build": it is decided only when the
	// layer is written (TarOptions.BuildTime), because dfbuild derives that time from
	// every input the build reads.
	Stamped bool
	Size    int64  // regular files only
	Target  string // symlink target, verbatim
	Major   int64  // devices only
	Minor   int64
	Content Opener // regular files only; nil means empty
	// HardLink, when not zero, groups regular files that are hard links of one file:
	// in a layer, the first of a group (in tar order) is written as a file and the
	// others as hard links to it, as Docker's layer writers do.
	HardLink uint64
	// Capability is the value of the entry's security.capability extended attribute
	// (file capabilities), "" when it has none. It is the only xattr the tree keeps:
	// BuildKit copies every xattr, but the layer writer it uses (containerd's
	// archive.ChangeWriter, from BuildKit's util/overlay/overlay_linux.go; moby's
	// does the same) writes security.capability alone, as a PAX record. A string
	// keeps Node small and comparable, and copies of it safe.
	Capability string

	children map[string]*Node // directories only
}

// CapabilityXattr is the one extended attribute a Node keeps (Node.Capability).
const CapabilityXattr = "security.capability"

// PAXCapability is the PAX record that carries Node.Capability in a tar header, as
// archive/tar writes Header.Xattrs and as containerd's and moby's layer writers and
// unpackers name it.
const PAXCapability = "SCHILY.xattr." + CapabilityXattr

// SameXattrs reports whether a and b carry the same extended attributes (the only
// one kept being security.capability). A layer writes them, so an entry whose
// xattrs changed has changed.
func SameXattrs(a, b *Node) bool { return a.Capability == b.Capability }

// IsDir reports whether n is a directory.
func (n *Node) IsDir() bool { return n.Type == TypeDir }

// header returns a copy of n without its children.
func (n *Node) header() Node {
	c := *n
	c.children = nil
	return c
}
