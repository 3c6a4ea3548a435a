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

	children map[string]*Node // directories only
}

// IsDir reports whether n is a directory.
func (n *Node) IsDir() bool { return n.Type == TypeDir }

// header returns a copy of n without its children.
func (n *Node) header() Node {
	c := *n
	c.children = nil
	return c
}
