//! The environment without a node: a fake host answers a few commands.

use super::*;

/// A host with a few string keys: GET, SET (when writable), and INCR.
struct Fake {
    data: HashMap<Vec<u8>, Vec<u8>>,
    writable: bool,
}

impl Host for Fake {
    fn writable(&self) -> bool {
        self.writable
    }

    fn now_ms(&self) -> u64 {
        1_700_000_000_123
    }

    fn run(&mut self, spec: &'static CommandSpec, argv: Vec<Bytes>, _resp3: bool) -> Reply {
        match spec.name {
            "get" => self
                .data
                .get(&argv[1][..])
                .map_or(Reply::Nil, |v| Reply::Bulk(v.clone().into())),
            "set" => {
                self.data.insert(argv[1].to_vec(), argv[2].to_vec());
                Reply::ok()
            }
            "lpush" => {
                Reply::err("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            "hgetall" => Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))]),
            "zscore" => Reply::Double(1.5),
            _ => Reply::err("ERR not in the fake"),
        }
    }
}

fn eval(body: &str, keys: &[&str], args: &[&str]) -> Reply {
    let mut host = Fake {
        data: HashMap::new(),
        writable: true,
    };
    eval_on(&mut host, body, keys, args)
}

fn eval_on(host: &mut Fake, body: &str, keys: &[&str], args: &[&str]) -> Reply {
    let keys: Vec<Bytes> = keys.iter().map(|k| Bytes::from(k.to_string())).collect();
    let args: Vec<Bytes> = args.iter().map(|k| Bytes::from(k.to_string())).collect();
    let sha = sha1_hex(body.as_bytes());
    match run(&sha, body.as_bytes(), &keys, &args, 0, host) {
        Outcome::Reply(r) | Outcome::CompileError(r) => r,
    }
}

fn err(msg: &str) -> Reply {
    Reply::Error(msg.to_string())
}

#[test]
fn lua_values_become_redis_replies() {
    assert_eq!(eval("return 'x'", &[], &[]), Reply::bulk("x"));
    assert_eq!(eval("return 3.99", &[], &[]), Reply::Int(3));
    assert_eq!(eval("return -3.7", &[], &[]), Reply::Int(-3));
    assert_eq!(eval("return 1e20", &[], &[]), Reply::Int(i64::MIN));
    assert_eq!(eval("return true", &[], &[]), Reply::Int(1));
    assert_eq!(eval("return false", &[], &[]), Reply::Nil);
    assert_eq!(eval("return nil", &[], &[]), Reply::Nil);
    assert_eq!(
        eval("return {1, 'a', {2}, nil, 5}", &[], &[]),
        Reply::Array(vec![
            Reply::Int(1),
            Reply::bulk("a"),
            Reply::Array(vec![Reply::Int(2)])
        ])
    );
    assert_eq!(eval("return {err='MY bad'}", &[], &[]), err("MY bad"));
    assert_eq!(
        eval("return redis.error_reply('MY bad')", &[], &[]),
        err("MY bad")
    );
    assert_eq!(
        eval("return redis.error_reply('-ERR')", &[], &[]),
        err("ERR ERR")
    );
    assert_eq!(
        eval("return redis.status_reply('FINE')", &[], &[]),
        Reply::Simple("FINE".into())
    );
    assert_eq!(
        eval("redis.setresp(3) return false", &[], &[]),
        Reply::Bool(false)
    );
    assert_eq!(eval("return {double=1.5}", &[], &[]), Reply::Double(1.5));
    assert_eq!(
        eval(
            "return {KEYS[1], ARGV[1], #KEYS, #ARGV}",
            &["k"],
            &["a", "b"]
        ),
        Reply::Array(vec![
            Reply::bulk("k"),
            Reply::bulk("a"),
            Reply::Int(1),
            Reply::Int(2)
        ])
    );
}

#[test]
fn command_replies_become_lua_values() {
    assert_eq!(
        eval(
            "redis.call('set', KEYS[1], 5) return redis.call('get', KEYS[1])",
            &["k"],
            &[]
        ),
        Reply::bulk("5")
    );
    // A number argument is sent as %.17g.
    assert_eq!(
        eval(
            "redis.call('set', 'k', 0.1) return redis.call('get', 'k')",
            &[],
            &[]
        ),
        Reply::bulk("0.10000000000000001")
    );
    assert_eq!(
        eval("return redis.call('get', 'none')", &[], &[]),
        Reply::Nil
    );
    assert_eq!(
        eval("return type(redis.call('get', 'none'))", &[], &[]),
        Reply::bulk("boolean")
    );
    assert_eq!(
        eval("return redis.call('hgetall', 'h')", &[], &[]),
        Reply::Array(vec![Reply::bulk("f"), Reply::bulk("v")])
    );
    assert_eq!(
        eval("return redis.call('zscore', 'z', 'm')", &[], &[]),
        Reply::bulk("1.5")
    );
    assert_eq!(
        eval(
            "redis.setresp(3) return redis.call('zscore', 'z', 'm')",
            &[],
            &[]
        ),
        Reply::Double(1.5)
    );
    assert_eq!(
        eval(
            "redis.setresp(3) return redis.call('hgetall', 'h').map.f",
            &[],
            &[]
        ),
        Reply::bulk("v")
    );
    assert_eq!(
        eval("return redis.pcall('lpush', 'k', 'v')", &[], &[]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(
        eval(
            "local ok, e = pcall(redis.call, 'nosuch') return e",
            &[],
            &[]
        ),
        Reply::bulk("ERR Unknown Redis command called from script")
    );
}

#[test]
fn errors_are_worded_as_redis_words_them() {
    let sha = sha1_hex(b"return x");
    assert_eq!(
        eval("return x", &[], &[]),
        err(&format!("ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: {sha}, on @user_script:1."))
    );
    let sha = sha1_hex(b"x = 1");
    assert_eq!(
        eval("x = 1", &[], &[]),
        err(&format!("ERR user_script:1: Attempt to modify a readonly table script: {sha}, on @user_script:1."))
    );
    // A tail call (`return redis.call(…)`) keeps the caller's line.
    let body = "\nreturn redis.call('lpush', 'k', 'v')";
    assert_eq!(
        eval(body, &[], &[]),
        err(&format!(
            "WRONGTYPE Operation against a key holding the wrong kind of value script: {}, on @user_script:2.",
            sha1_hex(body.as_bytes())
        ))
    );
    for (body, msg) in [
        (
            "return redis.call('nosuch')",
            "ERR Unknown Redis command called from script",
        ),
        (
            "return redis.call('get')",
            "ERR Wrong number of args calling Redis command from script",
        ),
        (
            "return redis.call('get', {})",
            "ERR Lua redis lib command arguments must be strings or integers",
        ),
        (
            "return redis.call('blpop', 'q', 0)",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "return redis.call('multi')",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "return redis.call('eval', 'return 1', 0)",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "string.rep = nil",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
        (
            "rawset(_G, 'y', 1)",
            "ERR Attempt to modify a readonly table",
        ),
        ("error('boom')", "ERR user_script:1: boom"),
        ("error({err='CUSTOM x'})", "CUSTOM x"),
        (
            "return redis.setresp(4)",
            "ERR RESP version must be 2 or 3.",
        ),
        (
            "return type(os)",
            "ERR user_script:1: Script attempted to access nonexistent global variable 'os'",
        ),
    ] {
        let want = format!(
            "{msg} script: {}, on @user_script:1.",
            sha1_hex(body.as_bytes())
        );
        assert_eq!(eval(body, &[], &[]), err(&want), "{body}");
    }
    assert_eq!(
        eval("return 'a' .. ", &[], &[]),
        err("ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'")
    );
    let mut ro = Fake {
        data: HashMap::new(),
        writable: false,
    };
    let body = "return redis.call('set', 'a', 'b')";
    assert_eq!(
        eval_on(&mut ro, body, &[], &[]),
        err(&format!(
            "ERR Write commands are not allowed from read-only scripts. script: {}, on @user_script:1.",
            sha1_hex(body.as_bytes())
        ))
    );
}

#[test]
fn the_environment_is_redis_s() {
    assert_eq!(
        eval("return redis.sha1hex('')", &[], &[]),
        Reply::bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    );
    assert_eq!(
        eval("return string.rep('x', 3)", &[], &[]),
        Reply::bulk("xxx")
    );
    assert_eq!(
        eval("return type(loadstring)", &[], &[]),
        Reply::bulk("function")
    );
    assert_eq!(
        eval("return loadstring('return 1 + 1')()", &[], &[]),
        Reply::Int(2)
    );
    // A loaded chunk runs in the protected globals too.
    assert!(
        matches!(eval("loadstring('z = 1')()", &[], &[]), Reply::Error(e) if e.contains("readonly table"))
    );
    assert_eq!(eval("return loadstring('\\27Lua')", &[], &[]), Reply::Nil);
    assert_eq!(
        eval("return collectgarbage('count')", &[], &[]),
        Reply::Int(0)
    );
    assert_eq!(
        eval("return redis.call('time')[1]", &[], &[]),
        Reply::bulk("1700000000")
    );
    // math.random starts from the entry's seed (0 here); after math.randomseed(0) Redis
    // gives the same numbers.
    assert_eq!(
        eval("return math.random(1000000000)", &[], &[]),
        Reply::Int(170828037)
    );
    assert_eq!(
        eval("math.randomseed(0) return {math.random(100), math.random(1,6), tostring(math.random())}", &[], &[]),
        Reply::Array(vec![Reply::Int(18), Reply::Int(5), Reply::bulk("0.09637165539729")])
    );
    let body = "return math.random(0)";
    assert_eq!(
        eval(body, &[], &[]),
        err(&format!("ERR user_script:1: bad argument #1 to 'random' (interval is empty) script: {}, on @user_script:1.", sha1_hex(body.as_bytes())))
    );
    let body = "return redis.sha1hex()";
    assert_eq!(
        eval(body, &[], &[]),
        err(&format!(
            "ERR wrong number of arguments script: {}, on @user_script:1.",
            sha1_hex(body.as_bytes())
        ))
    );
    // Globals a script cannot reach leave nothing behind for the next script.
    assert!(matches!(eval("_G.leak = 1", &[], &[]), Reply::Error(_)));
    assert!(
        matches!(eval("return leak", &[], &[]), Reply::Error(e) if e.contains("nonexistent global"))
    );
}

#[test]
fn a_runaway_script_stops_at_its_budget_even_through_pcall() {
    for body in [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
    ] {
        let r = eval(body, &[], &[]);
        assert!(
            matches!(&r, Reply::Error(e) if e.contains("budget")),
            "{body}: {r:?}"
        );
    }
    // The state is usable afterwards.
    assert_eq!(eval("return 1", &[], &[]), Reply::Int(1));
}

#[test]
fn shebangs_are_parsed_as_redis_parses_them() {
    assert_eq!(shebang(b"return 1").unwrap().0, ScriptFlags::default());
    let (flags, code) = shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
    assert!(flags.shebang && flags.no_writes);
    assert_eq!(code, b"\nreturn 1");
    assert_eq!(
        shebang(b"#!lua flags=bogus\n").unwrap_err(),
        "Unexpected flag in script shebang: bogus"
    );
    assert_eq!(
        shebang(b"#!python\n").unwrap_err(),
        "Unexpected engine in script shebang: #!python"
    );
    assert_eq!(
        shebang(b"#!lua name=x\n").unwrap_err(),
        "Unknown lua shebang option: name=x"
    );
    assert_eq!(shebang(b"#!lua").unwrap_err(), "Invalid script shebang");
}

#[test]
fn cjson_cmsgpack_and_bit_behave_as_redis_s() {
    // Expected values are Redis 7.0's replies to the same scripts.
    for (body, want) in [
        ("return cjson.encode({1,2,3})", Reply::bulk("[1,2,3]")),
        ("return cjson.encode({})", Reply::bulk("{}")),
        ("return cjson.encode({1,{x='y/z'},'a\"b', true, false})", Reply::bulk("[1,{\"x\":\"y\\/z\"},\"a\\\"b\",true,false]")),
        ("return cjson.encode(3.14159265358979)", Reply::bulk("3.1415926535898")),
        ("return cjson.encode({[1]=1,[3]=3})", Reply::bulk("[1,null,3]")),
        ("return cjson.encode('\\n\\t\\1\\127')", Reply::bulk("\"\\n\\t\\u0001\\u007f\"")),
        ("return cjson.decode('[1,2,{\"a\":null}]')[3].a == cjson.null", Reply::Int(1)),
        ("return cjson.encode(cjson.decode('{\"k\":{\"n\":[1,2.5,\"x\"]}}'))", Reply::bulk("{\"k\":{\"n\":[1,2.5,\"x\"]}}")),
        ("return cjson.decode('[01, 0x1F, +3]')", Reply::Array(vec![Reply::Int(1), Reply::Int(31), Reply::Int(3)])),
        ("return cmsgpack.pack({1,2,3})", Reply::Bulk(Bytes::from_static(b"\x93\x01\x02\x03"))),
        ("return cmsgpack.pack(1.5, -1, 300, -300)", Reply::Bulk(Bytes::from_static(b"\xca\x3f\xc0\x00\x00\xff\xcd\x01\x2c\xd1\xfe\xd4"))),
        ("return {cmsgpack.unpack(cmsgpack.pack(1, 'x', {1, 2}))}", Reply::Array(vec![Reply::Int(1), Reply::bulk("x"), Reply::Array(vec![Reply::Int(1), Reply::Int(2)])])),
        ("return cmsgpack.unpack(cmsgpack.pack({a=5})).a", Reply::Int(5)),
        (
            "return {bit.band(5,3), bit.bor(5,3), bit.bxor(5,3), bit.bnot(0), bit.lshift(1,31), bit.rshift(-1,28), bit.arshift(-256,4), bit.rol(1,33), bit.tohex(255), bit.tohex(-1, -4), bit.tobit(2^32+5), bit.bswap(1)}",
            Reply::Array(vec![
                Reply::Int(1), Reply::Int(7), Reply::Int(6), Reply::Int(-1), Reply::Int(-2147483648), Reply::Int(15),
                Reply::Int(-16), Reply::Int(2), Reply::bulk("000000ff"), Reply::bulk("FFFF"), Reply::Int(5), Reply::Int(16777216),
            ]),
        ),
    ] {
        assert_eq!(eval(body, &[], &[]), want, "{body}");
    }
    for (body, msg) in [
        (
            "return cjson.encode(1/0)",
            "ERR user_script:1: Cannot serialise number: must not be NaN or Inf",
        ),
        (
            "return cjson.encode({[1]=1,[20]=3})",
            "ERR user_script:1: Cannot serialise table: excessively sparse array",
        ),
        (
            "return cjson.decode('[1,2')",
            "ERR user_script:1: Expected comma or array end but found T_END at character 5",
        ),
        (
            "return cjson.decode('tru')",
            "ERR user_script:1: Expected value but found invalid token at character 1",
        ),
        (
            "return cmsgpack.unpack('\\193')",
            "ERR user_script:1: Bad data format in input.",
        ),
        (
            "return bit.band('x')",
            "ERR user_script:1: bad argument #1 to 'band' (number expected, got string)",
        ),
    ] {
        let want = format!(
            "{msg} script: {}, on @user_script:1.",
            sha1_hex(body.as_bytes())
        );
        assert_eq!(eval(body, &[], &[]), err(&want), "{body}");
    }
}

#[test]
fn a_script_sees_the_same_heap_behaviour_whatever_ran_before() {
    // A weak table keeps its entries until a collection the script itself caused.
    let body = "local t = setmetatable({}, {__mode = 'v'}) for i = 1, 1000 do t[i] = {} end \
                local n = 0 for _ in pairs(t) do n = n + 1 end return n";
    let first = eval(body, &[], &[]);
    for _ in 0..3 {
        // Garbage left by other scripts does not change it.
        eval(
            "local s = '' for i = 1, 2000 do s = s .. 'x' end return #s",
            &[],
            &[],
        );
        assert_eq!(eval(body, &[], &[]), first);
    }
    assert_eq!(first, Reply::Int(1000));
    // Building a long string piece by piece (much garbage) still works.
    assert_eq!(
        eval(
            "local s = '' for i = 1, 20000 do s = s .. 'x' end return #s",
            &[],
            &[]
        ),
        Reply::Int(20000)
    );
    // newproxy (whose __gc would run at the collector's whim) is not there; the string
    // metatable cannot be changed.
    assert!(
        matches!(eval("return newproxy", &[], &[]), Reply::Error(e) if e.contains("nonexistent global"))
    );
    assert!(
        matches!(eval("getmetatable('').__index = {}", &[], &[]), Reply::Error(e) if e.contains("readonly table"))
    );
    assert!(
        matches!(eval("setfenv(pcall, {})", &[], &[]), Reply::Error(e) if e.contains("readonly table"))
    );
    assert_eq!(eval("return ('abc'):upper()", &[], &[]), Reply::bulk("ABC"));
    // A script that changed its own environment runs in the protected one next time.
    let body = "if KEYS[1] then setfenv(1, {}) end return type(redis)";
    assert!(matches!(eval(body, &["x"], &[]), Reply::Error(_)));
    assert_eq!(eval(body, &[], &[]), Reply::bulk("table"));
    assert_eq!(eval("return getfenv() == _G", &[], &[]), Reply::Int(1));
    assert!(
        matches!(eval("setfenv(2, {})", &[], &[]), Reply::Error(e) if e.contains("readonly table"))
    );
}

#[test]
fn the_budget_stops_a_script_at_the_same_write_whatever_ran_before() {
    let body = "local i = 0 while true do i = i + 1 redis.call('set', 'n', i) end";
    set_budget(2_000_000);
    let stopped_at = |before: &str| {
        // What ran before leaves Lua's instruction count anywhere.
        eval(before, &[], &[]);
        let mut host = Fake {
            data: HashMap::new(),
            writable: true,
        };
        let r = eval_on(&mut host, body, &[], &[]);
        assert!(
            matches!(&r, Reply::Error(e) if e.contains("budget")),
            "{r:?}"
        );
        host.data.get(&b"n"[..]).cloned()
    };
    let first = stopped_at("return 1");
    assert!(first.is_some());
    for before in [
        "local x = 0 for i = 1, 12345 do x = x + i end",
        "return 2",
        "for i = 1, 777 do end",
    ] {
        assert_eq!(stopped_at(before), first, "after {before}");
    }
    set_budget(INSTRUCTION_BUDGET);
}

fn fcall(host: &mut Fake, code: &str, name: &str, read_only: bool, keys: &[&str]) -> Reply {
    let keys: Vec<Bytes> = keys.iter().map(|k| Bytes::from(k.to_string())).collect();
    run_function(code.as_bytes(), name, read_only, &keys, &[], 0, host)
}

#[test]
fn libraries_load_and_register_as_in_redis() {
    assert_eq!(library_name(b"#!lua name=lib_1\n"), Ok("lib_1".into()));
    assert_eq!(
        library_name(b"return 1").unwrap_err(),
        "Missing library metadata"
    );
    assert_eq!(
        library_name(b"#!lua name=a").unwrap_err(),
        "Invalid library metadata"
    );
    assert_eq!(
        library_name(b"#!lua\n").unwrap_err(),
        "Library name was not given"
    );
    assert_eq!(
        library_name(b"#!js name=a\n").unwrap_err(),
        "Engine 'js' not found"
    );
    assert_eq!(
        library_name(b"#!lua name=a x=1\n").unwrap_err(),
        "Invalid metadata value given: x=1"
    );
    let info = load_library(
        b"#!lua name=l\nredis.register_function('a', function() return 1 end)\n\
          redis.register_function{function_name='b', description='B', flags={'no-writes', 'NO-CLUSTER'},\n\
          callback=function(keys) return redis.call('GET', keys[1]) end}",
    )
    .unwrap();
    assert_eq!(info.len(), 2);
    assert_eq!(info[1].name, "b");
    assert_eq!(info[1].description.as_deref(), Some(&b"B"[..]));
    assert_eq!(info[1].flags, FLAG_NO_WRITES | 1 << 3);
    // While a library loads, its only global is the load API's `redis`.
    for (code, msg) in [
        (
            "#!lua name=l\nlocal n = string.len('x')",
            "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'string'",
        ),
        (
            "#!lua name=l\nredis.call('PING')",
            "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'",
        ),
        (
            "#!lua name=l\nx = 1",
            "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table",
        ),
        (
            "#!lua name=l\nredis.register_function('a-b', function() end)",
            "ERR Error registering functions: ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ),
        (
            "#!lua name=l\nredis.register_function('a', function() end) redis.register_function('a', function() end)",
            "ERR Error registering functions: ERR Function already exists in the library",
        ),
        (
            "#!lua name=l\nredis.register_function{function_name='a', callback=function() end, flags={'bad'}}",
            "ERR Error registering functions: ERR unknown flag given",
        ),
        (
            "#!lua name=l\nwhile true do end",
            "ERR Error registering functions: ERR FUNCTION LOAD timeout",
        ),
        (
            "#!lua name=l\nreturn 1 +",
            "ERR Error compiling function: user_function:2: unexpected symbol near '<eof>'",
        ),
    ] {
        if code.contains("while") {
            set_budget(1_000_000);
        }
        assert_eq!(load_library(code.as_bytes()).unwrap_err(), err(msg), "{code}");
        set_budget(INSTRUCTION_BUDGET);
    }
}

#[test]
fn functions_run_with_keys_and_args_from_a_fresh_library() {
    let mut host = Fake {
        data: HashMap::from([(b"k".to_vec(), b"v".to_vec())]),
        writable: true,
    };
    let code = "#!lua name=l\nlocal calls = 0\n\
        redis.register_function('count', function() calls = calls + 1 return calls end)\n\
        redis.register_function('get', function(keys) return redis.call('GET', keys[1]) end)\n\
        redis.register_function('keys', function() return KEYS end)\n\
        redis.register_function{function_name='ro', flags={'no-writes'}, \
            callback=function(keys) return redis.call('SET', keys[1], 'x') end}";
    assert_eq!(fcall(&mut host, code, "count", false, &[]), Reply::Int(1));
    assert_eq!(fcall(&mut host, code, "count", false, &[]), Reply::Int(1));
    assert_eq!(
        fcall(&mut host, code, "get", false, &["k"]),
        Reply::bulk("v")
    );
    assert_eq!(
        fcall(&mut host, code, "keys", false, &[]),
        err("ERR user_function:5: Script attempted to access nonexistent global variable 'KEYS' script: keys, on @user_function:5.")
    );
    assert_eq!(
        fcall(&mut host, code, "ro", false, &["k"]),
        err("ERR Write commands are not allowed from read-only scripts. script: ro, on @user_function:6.")
    );
    assert_eq!(
        fcall(&mut host, code, "get", true, &["k"]),
        err("ERR Can not execute a script with write flag using *_ro command.")
    );
}

#[test]
fn struct_packs_and_unpacks_as_redis_s() {
    // Expected values from Redis 7.0.15 (EVAL … 0).
    assert_eq!(
        eval(
            "return struct.pack('<i>Hc0s', -2, 65535, 'xyz', 'q')",
            &[],
            &[]
        ),
        Reply::Bulk(Bytes::from_static(b"\xfe\xff\xff\xff\xff\xffxyzq\0"))
    );
    assert_eq!(
        eval("return {struct.unpack('>i2', 'abcdef')}", &[], &[]),
        Reply::Array(vec![Reply::Int(24930), Reply::Int(3)])
    );
    assert_eq!(
        eval(
            "return {struct.unpack('bc0', struct.pack('bc0', 3, 'xyz'))}",
            &[],
            &[]
        ),
        Reply::Array(vec![Reply::bulk("xyz"), Reply::Int(5)])
    );
    assert_eq!(eval("return struct.size('!4bi')", &[], &[]), Reply::Int(8));
    assert_eq!(
        eval(
            "local a, b, c, d = struct.unpack('!8bdbi', struct.pack('!8bdbi', -1, 2.5, 3, -4)) return {a, b * 2, c, d}",
            &[],
            &[]
        ),
        Reply::Array(vec![Reply::Int(-1), Reply::Int(5), Reply::Int(3), Reply::Int(-4)])
    );
    for (body, msg) in [
        (
            "return struct.pack('q', 1)",
            "ERR user_script:1: bad argument #1 to 'pack' (invalid format option 'q') script: ",
        ),
        (
            "return struct.pack('c3', 'ab')",
            "ERR user_script:1: bad argument #3 to 'pack' (string too short) script: ",
        ),
        (
            "return struct.pack('i40', 1)",
            "ERR user_script:1: integral size 40 is larger than limit of 32 script: ",
        ),
        (
            "return struct.unpack('c0', 'abc')",
            "ERR user_script:1: format 'c0' needs a previous size script: ",
        ),
        (
            "return struct.size('s')",
            "ERR user_script:1: bad argument #1 to 'size' (option 's' has no fixed size) script: ",
        ),
    ] {
        match eval(body, &[], &[]) {
            Reply::Error(e) => assert!(e.starts_with(msg), "{body}: {e}"),
            other => panic!("{body}: {other:?}"),
        }
    }
}
