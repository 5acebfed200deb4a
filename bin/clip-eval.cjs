#!/usr/bin/env node
'use strict';
// sharp decodes images on libuv's thread pool, one image per thread, and libuv sizes that pool once,
// from UV_THREADPOOL_SIZE, when it is first used: loading an ES module already uses it. So this
// launcher, loaded as CommonJS (no pool yet), gives the pool a thread per core (at least libuv's
// default of 4) unless the variable is set, and then loads the CLI.
const { availableParallelism } = require('node:os');

process.env.UV_THREADPOOL_SIZE ??= String(Math.min(1024, Math.max(4, availableParallelism())));
import('./clip-eval.js');
