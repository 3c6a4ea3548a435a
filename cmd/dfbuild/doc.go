// Command dfbuild builds container images from Dockerfiles without a Docker daemon,
// without root and without running containers.
//
// Usage:
//
//	dfbuild [flags] [CONTEXT]
//
// Run "dfbuild --help" for the flags and examples. The command is a thin layer over the
// libraries: it turns flags into options, calls parser.Parse, interp.Build and
// dockerarchive.WriteFile (or WriteDir for -o type=dir), writes the --iidfile and
// --metadata-file records, and prints what they return. Exit status 1 means the build
// failed, 2 that the command line was wrong.
package main
