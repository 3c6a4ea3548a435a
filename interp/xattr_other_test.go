//go:build !linux

package interp_test

import "errors"

func setFileXattr(string, string, string) error { return errors.ErrUnsupported }

func fileCapability(string) string { return "" }
