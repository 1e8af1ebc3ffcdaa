/**
 * Unit tests of the pure modules (the model). They need no DOM, so they run
 * with ts-jest in node rather than through @jupyterlab/testutils.
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
