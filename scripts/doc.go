// Package scripts holds the project's shell scripts (build, demo, RGW topic
// setup, benchmarks); it has no Go code of its own. Its tests run the build
// script the Dockerfile uses, check the Dockerfile and .dockerignore, and
// check every script with bash -n, shellcheck and --help. Nothing may import
// it.
package scripts
