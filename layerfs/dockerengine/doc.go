// Package dockerengine is a minimal client of the Docker Engine API, enough to load an
// image archive into the local engine (dfbuild --load) without writing a file first.
// It uses net/http only.
//
// The engine is found as the docker CLI finds it (docker/cli cli/command/cli.go
// resolveContextName, cli/context/store): DOCKER_HOST wins; else the context that
// DOCKER_CONTEXT or config.json's currentContext names, whose meta.json under
// $DOCKER_CONFIG/contexts/meta/<sha256 of the name>/ gives Endpoints.docker.Host; else
// unix:///var/run/docker.sock (moby client DefaultDockerHost). unix:// and tcp://
// hosts are supported; tcp:// uses TLS when DOCKER_TLS_VERIFY is set (certificates
// from DOCKER_CERT_PATH, default ~/.docker), or when a context has TLS files. ssh://
// and npipe:// are not.
//
// Invariants:
//   - the API version is negotiated once per client, as the moby client does: the
//     lower of the engine's Api-Version (GET /_ping) and MaxAPIVersion, and an engine
//     below MinAPIVersion is refused;
//   - Load streams its body: the archive is never held in memory or written to disk;
//   - the engine reports a failed load inside a 200 response, as a JSON message with
//     "error"; Load reads the whole reply and returns such a message as an error, so a
//     load is a success only when the engine said nothing but success;
//   - every error names the engine's address.
//
// The package prints nothing.
package dockerengine
