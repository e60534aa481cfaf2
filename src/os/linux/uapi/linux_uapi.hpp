// os/linux/uapi/linux_uapi.hpp: kernel constants and structures that Debian 12's headers (Linux 6.1) lack.
//
// The one place they are defined, under the upstream names and values (linux/userfaultfd.h and
// linux/fs.h, 6.7+), each only where the system headers do not define it already, so the file also
// builds against newer headers. Every use checks at run time that the kernel offers the feature.
//
// Constants, and one inline filler for PAGEMAP_SCAN's argument (no system call): the one internal
// header the tools (the CLI's hand-written baselines) may include, through the faultline_uapi target's
// include folder, by the rule in src/layers.txt.
#pragma once

#include <cstdint>
#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1ULL << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1ULL << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1ULL << 16)
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#ifndef UFFDIO_MOVE
struct uffdio_move {
  __u64 dst;
  __u64 src;
  __u64 len;
  __u64 mode;
  __s64 move;
};
#define UFFDIO_MOVE _IOWR(0xAA, 0x05, struct uffdio_move)
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#endif

#ifndef UFFDIO_POISON
struct uffdio_poison {
  struct uffdio_range range;
  __u64 mode;
  __s64 updated;
};
#define UFFDIO_POISON _IOWR(0xAA, 0x08, struct uffdio_poison)
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
#endif

#ifndef PAGEMAP_SCAN
struct page_region {
  __u64 start;
  __u64 end;
  __u64 categories;
};
struct pm_scan_arg {
  __u64 size;
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)
#define PAGE_IS_GUARD (1 << 8)
#endif

static_assert(sizeof(struct pm_scan_arg) == 96, "pm_scan_arg layout");

// A PAGEMAP_SCAN argument that reports the pages of [start, end) in `category` into `vec[vec_len]`,
// with `flags` (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC: also write-protect what it reports, the
// WP_ASYNC harvest). Fills the structure only; the caller issues the ioctl.
inline pm_scan_arg pagemap_scan_arg(std::uint64_t start, std::uint64_t end, page_region* vec,
                                       std::uint64_t vec_len, std::uint64_t category,
                                       std::uint64_t flags = 0) noexcept {
  pm_scan_arg arg{};
  arg.size = sizeof arg;
  arg.flags = flags;
  arg.start = start;
  arg.end = end;
  arg.vec = reinterpret_cast<std::uint64_t>(vec);
  arg.vec_len = vec_len;
  arg.category_mask = category;
  arg.return_mask = category;
  return arg;
}

// madvise advice from Linux 5.14 (glibc 2.36's headers may lack them).
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
