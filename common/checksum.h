// A fast, non-cryptographic 64-bit checksum of a byte range (detects corruption, not attacks).
#ifndef TAILOR_COMMON_CHECKSUM_H_
#define TAILOR_COMMON_CHECKSUM_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace tailor {

uint64_t Checksum64(std::span<const std::byte> bytes);
std::string ChecksumHex(std::span<const std::byte> bytes);  // 16 lowercase hex digits

}  // namespace tailor

#endif  // TAILOR_COMMON_CHECKSUM_H_
