// Package jwttest mints JSON Web Tokens and key sets for tests of the JWT
// authenticator (server.JWT) and of the wire forms that carry its tokens:
// RSA, P-256 and HS256 keys, their JWKS, tokens signed with each, unsigned
// ("alg": "none") tokens and HS256 tokens signed with an RSA public key
// (key confusion). It is for tests only.
package jwttest
