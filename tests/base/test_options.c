/*
 * test_options.c -- declared settings: one case per kind of mistake, each
 * error naming the file, the line and the setting.
 */
#include "harness.h"
#include "error.h"
#include "options.h"

#include <libconfig.h>
#include <string.h>

static const struct reimage_option table[] = {
	{ "name", REIMAGE_OPT_STRING, "default-name", 0, 0, "a string" },
	{ "count", REIMAGE_OPT_INT, "3", 1, 10, "an integer in 1..10" },
	{ "flag", REIMAGE_OPT_BOOL, "true", 0, 0, "a boolean" },
	{ "items", REIMAGE_OPT_STRINGS, "a,b", 0, 0, "strings" },
	{ "sub", REIMAGE_OPT_GROUP, NULL, 0, 0, "a group" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

/* Parse text as a config file named t.conf; returns options_read's result
 * and leaves the message in err. */
static int parse(const char *text, struct reimage_optval *v, struct reimage_error *err,
		 config_t *cfg)
{
	const char *path = t_path("t.conf");
	t_write(path, text);
	config_init(cfg);
	if (!config_read_file(cfg, path)) {
		err_set(err, -22, REIMAGE_EC_CONFIG, "%s:%d: %s", config_error_file(cfg),
			config_error_line(cfg), config_error_text(cfg));
		return -22;
	}
	return options_read(config_root_setting(cfg), "test file", table, v, 0, err);
}

static void expect_error(const char *text, const char *needle, const char *line)
{
	struct reimage_optval v[6] = { 0 };
	struct reimage_error err = { 0 };
	config_t cfg;
	int r = parse(text, v, &err, &cfg);
	CU_ASSERT(r < 0);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "t.conf:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, line));
	if (!strstr(err.msg, needle) || !strstr(err.msg, line))
		fprintf(stderr, "message was: %s\n", err.msg);
	options_free(table, v);
	config_destroy(&cfg);
}

TEST_CASE(defaults)
{
	struct reimage_optval v[6] = { 0 };
	struct reimage_error err = { 0 };
	config_t cfg;
	CU_ASSERT_EQUAL_FATAL(parse("", v, &err, &cfg), 0);
	CU_ASSERT_STRING_EQUAL(v[0].s, "default-name");
	CU_ASSERT_EQUAL(v[1].i, 3);
	CU_ASSERT_EQUAL(v[2].i, 1);
	CU_ASSERT_EQUAL_FATAL(v[3].n, 2);
	CU_ASSERT_STRING_EQUAL(v[3].list[0], "a");
	CU_ASSERT_STRING_EQUAL(v[3].list[1], "b");
	CU_ASSERT_PTR_NULL(v[3].list[2]);
	CU_ASSERT_EQUAL(v[4].set, 0);
	options_free(table, v);
	config_destroy(&cfg);
}

TEST_CASE(values)
{
	struct reimage_optval v[6] = { 0 };
	struct reimage_error err = { 0 };
	config_t cfg;
	CU_ASSERT_EQUAL_FATAL(parse("name = \"x\";\ncount = 10;\nflag = false;\nitems = \"one\";\n"
				    "sub = { anything = 1; };\n", v, &err, &cfg), 0);
	CU_ASSERT_STRING_EQUAL(v[0].s, "x");
	CU_ASSERT_EQUAL(v[1].i, 10);
	CU_ASSERT_EQUAL(v[1].line, 2);
	CU_ASSERT_EQUAL(v[2].i, 0);
	CU_ASSERT_EQUAL_FATAL(v[3].n, 1);
	CU_ASSERT_STRING_EQUAL(v[3].list[0], "one");
	CU_ASSERT_EQUAL(v[4].set, 1);
	CU_ASSERT_EQUAL(options_index(table, "count"), 1);
	CU_ASSERT_EQUAL(options_index(table, "nothing"), -1);
	options_free(table, v);
	config_destroy(&cfg);
}

TEST_CASE(unknown_setting)
{
	expect_error("name = \"x\";\n\nnmae = \"y\";\n", "unknown setting 'nmae'", ":3");
}

TEST_CASE(wrong_type_int)
{
	expect_error("count = \"five\";\n", "setting 'count': expected an integer", ":1");
}

TEST_CASE(wrong_type_string)
{
	expect_error("\nname = 5;\n", "setting 'name': expected a string", ":2");
}

TEST_CASE(wrong_type_bool)
{
	expect_error("flag = 1;\n", "setting 'flag': expected true or false", ":1");
}

TEST_CASE(out_of_range)
{
	expect_error("count = 11;\n", "setting 'count': out of range (allowed 1..10)", ":1");
}

TEST_CASE(list_item_not_string)
{
	expect_error("items = [\"a\", \"b\"];\nitems2 = 1;\n", "unknown setting 'items2'", ":2");
	expect_error("items = ( \"a\", 3 );\n", "every item must be a string", ":1");
}

TEST_CASE(syntax_error)
{
	expect_error("name = \"x\";\ncount = ;\n", "syntax error", ":2");
}

TEST_CASE(duplicate_setting)
{
	/* libconfig refuses a name given twice in one group: no silent
	 * last-one-wins in a document that carries decisions. */
	expect_error("count = 3;\ncount = 4;\n", "duplicate", ":2");
}

/* No layer says again what the layer below said: "open X: open X: ..."
 * and "poll URL: GET URL: ..." are the classes of repeated prefixes. */
TEST_CASE(error_prefix_not_repeated)
{
	struct reimage_error err = { 0 };

	err_set(&err, -ENOENT, REIMAGE_EC_NOTFOUND, "open /srv/x: No such file or directory");
	err_prefix(&err, "open %s", "/srv/x");
	CU_ASSERT_STRING_EQUAL(err.msg, "open /srv/x: No such file or directory");
	err_prefix(&err, "stage");
	CU_ASSERT_STRING_EQUAL(err.msg, "stage: open /srv/x: No such file or directory");
	err_clear(&err);
	err_set(&err, -EIO, REIMAGE_EC_NETWORK, "GET http://h/jobs/a.job: Couldn't connect");
	err_prefix_about(&err, "poll", "http://h/jobs/a.job");
	CU_ASSERT_STRING_EQUAL(err.msg, "poll: GET http://h/jobs/a.job: Couldn't connect");
	err_clear(&err);
	err_set(&err, -EIO, REIMAGE_EC_IO, "out of memory");
	err_prefix_about(&err, "poll", "http://h/jobs/a.job");
	CU_ASSERT_STRING_EQUAL(err.msg, "poll http://h/jobs/a.job: out of memory");
}
