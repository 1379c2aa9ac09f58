import { backendPreference } from '../src/compute/backend.js';
import { fixtureSuite } from './fixture-suite.js';

// The backend this machine selects by itself: native TensorFlow where @tensorflow/tfjs-node is
// installed, else wasm (HESSIAN_BACKEND overrides).
fixtureSuite(backendPreference());
