/* SPDX-License-Identifier: ISC */
/* Tests for svc/daemon/hookcg: reading the daemon's cgroup v2 from /proc/self/cgroup and where it
 * is mounted from /proc/self/mountinfo, odd and hostile lines included. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "svc/daemon/hookcg.h"

static int cgroup_of(const char *text, char *path, size_t size)
{
	return hookcg_parse_cgroup(text, strlen(text), path, size);
}

static void test_cgroup_v2(void **state)
{
	char path[PATH_MAX];

	assert_int_equal(cgroup_of("0::/system.slice/sakeyd.service\n", path, sizeof(path)), 0);
	assert_string_equal(path, "/system.slice/sakeyd.service");
	/* Hybrid: v1 lines around it; no final newline. */
	assert_int_equal(cgroup_of("12:pids:/x\n1:name=systemd:/a\n0::/a b/c", path, sizeof(path)),
			 0);
	assert_string_equal(path, "/a b/c");
	assert_int_equal(cgroup_of("0::/\n", path, sizeof(path)), 0);
	assert_string_equal(path, "/");
	/* A path with ':' in it is the rest of the line. */
	assert_int_equal(cgroup_of("0::/a:b\n", path, sizeof(path)), 0);
	assert_string_equal(path, "/a:b");
}

static void test_cgroup_refused(void **state)
{
	char path[PATH_MAX], small[8];

	/* cgroup v1 only, or nothing. */
	assert_int_equal(cgroup_of("4:memory:/x\n1:name=systemd:/\n", path, sizeof(path)), -ENOENT);
	assert_int_equal(cgroup_of("", path, sizeof(path)), -ENOENT);
	/* 10::/x is not hierarchy 0; 0:pids:/x has a controller. */
	assert_int_equal(cgroup_of("10::/x\n0:pids:/x\n", path, sizeof(path)), -ENOENT);
	/* Malformed lines. */
	assert_int_equal(cgroup_of("garbage\n0::/x\n", path, sizeof(path)), -EINVAL);
	assert_int_equal(cgroup_of("0:/x\n", path, sizeof(path)), -EINVAL);
	assert_int_equal(cgroup_of("0::\n", path, sizeof(path)), -EINVAL);
	assert_int_equal(cgroup_of("0::relative\n", path, sizeof(path)), -EINVAL);
	/* A path that climbs out, or is not canonical. */
	assert_int_equal(cgroup_of("0::/a/../../etc\n", path, sizeof(path)), -EINVAL);
	assert_int_equal(cgroup_of("0::/a/./b\n", path, sizeof(path)), -EINVAL);
	assert_int_equal(cgroup_of("0::/a//b\n", path, sizeof(path)), -EINVAL);
	assert_int_equal(cgroup_of("0::/a/\n", path, sizeof(path)), -EINVAL);
	/* Two v2 lines: which one? */
	assert_int_equal(cgroup_of("0::/a\n0::/b\n", path, sizeof(path)), -EINVAL);
	/* A NUL inside. */
	assert_int_equal(hookcg_parse_cgroup("0::/a\0b\n", 8, path, sizeof(path)), -EINVAL);
	/* Longer than the buffer. */
	assert_int_equal(cgroup_of("0::/abcdefgh\n", small, sizeof(small)), -ENAMETOOLONG);
	/* Not NUL-terminated: only len bytes are read. */
	assert_int_equal(hookcg_parse_cgroup("0::/abc/def", 7, path, sizeof(path)), 0);
	assert_string_equal(path, "/abc");
}

static int mount_of(const char *text, const char *cg, char *dir, size_t size)
{
	return hookcg_parse_mountinfo(text, strlen(text), cg, dir, size);
}

#define ROOTFS "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
#define SYSFS "23 22 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
#define CG2 "30 23 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
#define CG1 "31 23 0:27 / /sys/fs/cgroup/pids rw shared:10 - cgroup cgroup rw,pids\n"

static void test_mountinfo(void **state)
{
	char dir[PATH_MAX];

	assert_int_equal(mount_of(ROOTFS SYSFS CG1 CG2, "/system.slice/sakeyd.service", dir,
				  sizeof(dir)),
			 0);
	assert_string_equal(dir, "/sys/fs/cgroup/system.slice/sakeyd.service");
	/* The root cgroup. */
	assert_int_equal(mount_of(CG2, "/", dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/");
	/* A bind mount of the unit's own cgroup (ReadWritePaths=) wins over the read-only whole. */
	assert_int_equal(mount_of(CG2 "40 30 0:26 /system.slice/sakeyd.service "
				      "/sys/fs/cgroup/system.slice/sakeyd.service rw shared:9 - "
				      "cgroup2 cgroup2 rw\n",
				  "/system.slice/sakeyd.service", dir, sizeof(dir)),
			 0);
	assert_string_equal(dir, "/sys/fs/cgroup/system.slice/sakeyd.service");
	/* A bind of a sibling whose name starts the same does not hold it. */
	assert_int_equal(mount_of("40 30 0:26 /system.slice/sakeyd /mnt/x rw - cgroup2 c rw\n" CG2,
				  "/system.slice/sakeyd.service", dir, sizeof(dir)),
			 0);
	assert_string_equal(dir, "/sys/fs/cgroup/system.slice/sakeyd.service");
	/* Hybrid (systemd's "unified" place), with escapes; optional fields any number. */
	assert_int_equal(mount_of("35 23 0:28 / /sys/fs/cgroup/uni\\040fied rw shared:1 master:2 "
				  "propagate_from:3 - cgroup2 cgroup2 rw\n",
				  "/a", dir, sizeof(dir)),
			 0);
	assert_string_equal(dir, "/sys/fs/cgroup/uni fied/a");
	/* cgroup2 mounted on / (a container). */
	assert_int_equal(mount_of("35 23 0:28 / / rw - cgroup2 cgroup2 rw\n", "/a", dir, sizeof(dir)),
			 0);
	assert_string_equal(dir, "/a");
}

static void test_mountinfo_refused(void **state)
{
	char dir[PATH_MAX], small[16];

	/* No cgroup2 at all; one that does not hold the path. */
	assert_int_equal(mount_of(ROOTFS SYSFS CG1, "/a", dir, sizeof(dir)), -ENOENT);
	assert_int_equal(mount_of("40 30 0:26 /b /mnt rw - cgroup2 c rw\n", "/a", dir, sizeof(dir)),
			 -ENOENT);
	/* Too few fields, no separator, no type after it. */
	assert_int_equal(mount_of("40 30 0:26 / /mnt\n", "/a", dir, sizeof(dir)), -EINVAL);
	assert_int_equal(mount_of("40 30 0:26 / /mnt rw shared:1 cgroup2 c rw\n", "/a", dir,
				  sizeof(dir)),
			 -EINVAL);
	assert_int_equal(mount_of("40 30 0:26 / /mnt rw -\n", "/a", dir, sizeof(dir)), -EINVAL);
	/* Bad escapes: cut short, not octal, a NUL, a '/' out of range. */
	assert_int_equal(mount_of("40 30 0:26 / /mnt\\04 rw - cgroup2 c rw\n", "/a", dir,
				  sizeof(dir)),
			 -EINVAL);
	assert_int_equal(mount_of("40 30 0:26 / /mnt\\09x rw - cgroup2 c rw\n", "/a", dir,
				  sizeof(dir)),
			 -EINVAL);
	assert_int_equal(mount_of("40 30 0:26 / /mnt\\000 rw - cgroup2 c rw\n", "/a", dir,
				  sizeof(dir)),
			 -EINVAL);
	assert_int_equal(mount_of("40 30 0:26 / /mnt\\400 rw - cgroup2 c rw\n", "/a", dir,
				  sizeof(dir)),
			 -EINVAL);
	/* A mount point or root that climbs, or is relative. */
	assert_int_equal(mount_of("40 30 0:26 / /mnt/../etc rw - cgroup2 c rw\n", "/a", dir,
				  sizeof(dir)),
			 -EINVAL);
	assert_int_equal(mount_of("40 30 0:26 x /mnt rw - cgroup2 c rw\n", "/a", dir, sizeof(dir)),
			 -EINVAL);
	/* A relative cgroup path. */
	assert_int_equal(mount_of(CG2, "a", dir, sizeof(dir)), -EINVAL);
	/* NUL inside. */
	assert_int_equal(hookcg_parse_mountinfo("40 30 0:26 / /m\0t rw - cgroup2 c rw\n", 36, "/a",
						dir, sizeof(dir)),
			 -EINVAL);
	/* Too long for the buffer. */
	assert_int_equal(mount_of(CG2, "/system.slice/sakeyd.service", small, sizeof(small)),
			 -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cgroup_v2),
		cmocka_unit_test(test_cgroup_refused),
		cmocka_unit_test(test_mountinfo),
		cmocka_unit_test(test_mountinfo_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
