// Package keyformat is Latchkey's key format: what a key looks like, how it is
// minted, how a gateway rejects garbage before any lookup, and how the secret is
// turned into the keyed hash that is the only thing ever stored.
//
// A key is <prefix><body>[<checksum>]. Key types are configuration (see Type and
// LoadProfile), so an operator can reproduce another product's key scheme without
// code changes.
//
// The body alphabet never contains '_' and every prefix ends with '_', so the
// prefix of a key is everything up to and including its last '_'. The exception is a
// legacy prefix (Type.LegacyPrefixes): keys another system minted, adopted as they are,
// whose body is any 16 to 128 characters of [A-Za-z0-9_-] with no checksum. Base62 uses the
// alphabet 0-9A-Za-z (in that order); the checksum is the CRC32-IEEE of prefix+body,
// written most significant digit first as 6 base62 characters, left-padded with '0'.
// Secret scanners and SDKs that validate keys offline must use the same rules.
package keyformat
