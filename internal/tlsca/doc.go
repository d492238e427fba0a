// Package tlsca loads the certificates a client trusts from a PEM file: the
// one reading of a "ca_file" shared by the client drivers' openers and the
// command line.
package tlsca
