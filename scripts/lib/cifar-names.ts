/** The fixture draws from the same name lists and templates as the tool. */
export * from '../../src/datasets/cifar/class-names.js';
export { OPENAI_CIFAR_TEMPLATES } from '../../src/text/templates.js';
