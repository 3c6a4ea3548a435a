// Package registrytest starts a real distribution registry (Debian's docker-registry,
// distribution 2.8.2) on 127.0.0.1 for dfbuild's registry tests, optionally with
// htpasswd auth and with TLS from a CA it generates, and reads the registry's access
// log back so that tests can count what a push or pull sent over the wire (blob GETs,
// uploads, cross-repository mounts, manifest PUTs).
//
// Invariants:
//   - Each Start runs its own registry process on a fresh loopback port, with its
//     configuration, storage, htpasswd file and certificates in a temporary
//     directory; tb.Cleanup kills and reaps the process and then removes the
//     directory. Nothing listens beyond 127.0.0.1.
//   - A machine without docker-registry skips the test (imagetest.Require); under
//     CI=true it fails instead.
//   - The access log starts empty once Start returns: the readiness probes are not
//     in it. Requests and ResetLog first send a barrier request and wait for its
//     line, so every request that completed before the call is in the log (the
//     registry writes a line only after the response is out); barrier lines are
//     never reported.
//   - Settings come only from the generated file: REGISTRY_* variables of the
//     environment, which distribution would let override it, are dropped.
//
// It is for tests only and imports neither parser nor interp.
package registrytest
