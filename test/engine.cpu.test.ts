import { fixtureSuite } from './fixture-suite.js';

// The plain JavaScript backend, the last fallback, passes the same cases.
fixtureSuite('cpu');
