// Package testcert makes the throwaway TLS certificate of a test: a
// self-signed ECDSA certificate for 127.0.0.1 and localhost, valid for an
// hour around now, written as PEM files into a test's directory.
package testcert
