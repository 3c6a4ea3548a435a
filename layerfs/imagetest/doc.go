// Package imagetest holds test helpers shared by dfbuild's packages: Validate checks an
// image archive with dfbuild's own reader and with an independent one
// (go-containerregistry's tarball, layout and validate packages), and Listing renders
// a layer as a stable text listing for golden files.
//
// It is for tests only; nothing outside _test.go files imports it.
package imagetest
