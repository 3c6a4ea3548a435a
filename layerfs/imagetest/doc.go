// Package imagetest holds test helpers shared by dfbuild's packages: Validate checks an
// image archive with dfbuild's own reader and with an independent one
// (go-containerregistry's tarball, layout and validate packages), and Listing renders
// a layer as a stable text listing for golden files. An archive in the classic layout
// (no blobs/, such as a tar of a -o type=dir output) has no OCI half to check, and
// its outer tar may carry the user names of whatever tar packed it.
//
// Require, RequireDocker and SkipShort gate the end-to-end tests: a missing tool
// skips a test, or fails it under CI=true. Files writes the fixtures of image
// archives and layouts: files held in memory, written as a tar or a directory, and
// images laid out as docker save, skopeo and OCI layouts lay them out
// (AddDockerArchive, AddOCILayout).
//
// It is for tests only; nothing outside _test.go files imports it.
package imagetest
