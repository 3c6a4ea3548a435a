//go:build !linux

package interp

import "os"

// getCapability reads the security.capability xattr, a Linux one: elsewhere a file
// has none.
func getCapability(string) (string, error) { return "", nil }

// fileCapability finds no xattr where getCapability finds none.
func fileCapability(*os.File) (string, bool, error) { return "", true, nil }
